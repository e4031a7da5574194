"""Each file in tests/invalid/ ends with the exact lines its errors must be reported as."""

from __future__ import annotations

import pytest

import vggspec
from conftest import INVALID

CASES = sorted(INVALID.glob("*.yaml"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_spec_reports_exactly(path, monkeypatch):
    expected = [line.removeprefix("# expect: ") for line in path.read_text().splitlines()
                if line.startswith("# expect: ")]
    assert expected, f"{path.name} states no expected error"
    monkeypatch.chdir(INVALID)
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.plan(path.name)  # every check, the fields' and the layers'
    assert [str(issue) for issue in caught.value.issues] == \
        [line for line in expected if ": note: " not in line]
    assert str(caught.value).splitlines() == expected


def test_there_are_enough_invalid_examples():
    assert len(CASES) >= 15
