"""The README's Python examples run as shown."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index]
    exec(compile(code, f"README block {index}", "exec"), {"__name__": "__readme__"})


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "python -m pip install . && deepnet-fast train" in text
    assert 'python -m pip install -e ".[test]" && python -m pytest' in text
