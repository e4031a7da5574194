"""The one layer vggspec needs that Keras 3 lacks: local response normalisation.

Registered as ``vggspec>LocalResponseNormalization``, so a saved model that uses it
reloads with ``keras.models.load_model`` once ``vggspec.layers`` has been imported.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vggspec")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al., 2012):

        out = x / (bias + alpha * sum of x**2 over the 2*depth_radius + 1 nearest channels) ** beta

    the same formula as ``tf.nn.local_response_normalization``, written with keras.ops
    so it runs on any backend. It has no weights.

    >>> layer = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    >>> tuple(layer(keras.ops.ones((1, 4, 4, 8))).shape)
    (1, 4, 4, 8)
    """

    def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4,
                 beta: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        squared = ops.square(inputs)
        radius = self.depth_radius
        padded = ops.pad(squared, [[0, 0], [0, 0], [0, 0], [radius, radius]])
        channels = ops.shape(inputs)[-1]
        window = padded[..., 0:channels]
        for offset in range(1, 2 * radius + 1):
            window = window + padded[..., offset:offset + channels]
        return inputs / ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha,
                      beta=self.beta)
        return config
