"""Class names shipped with vggspec, as package data (see imagenet.txt's header)."""
