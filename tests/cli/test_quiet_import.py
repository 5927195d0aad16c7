"""The CLI loads TensorFlow without its start-up lines, and hides nothing else a module prints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from microspeech.cli.quiet_import import NOISE, without_noise


def _run(code: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_tensorflow_prints_its_start_up_lines_and_the_cli_keeps_them_out():
    plain = _run("import tensorflow")
    assert plain.returncode == 0, plain.stderr
    assert any(noise in plain.stderr for noise in NOISE)  # what the hook is for
    quiet = _run("from microspeech.cli import app\nimport tensorflow, keras\nprint(tensorflow.__version__)")
    assert quiet.returncode == 0, quiet.stderr
    assert not any(noise in quiet.stderr for noise in NOISE), quiet.stderr
    assert quiet.stdout.strip()


def _noisy_package(root, name: str, tail: str) -> None:
    package = root / name
    package.mkdir()
    lines = "".join(f"{noise}\\n" for noise in NOISE) + "a line that matters\\n"
    (package / "__init__.py").write_text(f"import os\nos.write(2, b'{lines}')\n{tail}\n")


def test_other_lines_pass_and_a_failing_import_shows_everything(tmp_path):
    _noisy_package(tmp_path, "noisy_pkg", "VALUE = 7")
    _noisy_package(tmp_path, "broken_pkg", "raise ImportError('broken on purpose')")
    code = """
        import sys
        from microspeech.cli.quiet_import import QuietImport
        sys.meta_path.insert(0, QuietImport(["noisy_pkg", "broken_pkg"]))
        import noisy_pkg
        print(noisy_pkg.VALUE, type(noisy_pkg.__spec__.loader).__name__)
        import broken_pkg
    """
    result = _run(code, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stdout.split() == ["7", "_CapturingLoader"]
    first, _, rest = result.stderr.partition("a line that matters")
    assert not any(noise in first for noise in NOISE)  # noisy_pkg: only the line that matters
    assert all(noise in rest for noise in NOISE)  # broken_pkg: everything, then the error
    assert "a line that matters" in rest and "broken on purpose" in rest


def test_without_noise_drops_only_the_matching_lines():
    text = f"keep 1\n{NOISE[0]}\nI0000 port.cc:153] {NOISE[1]} more\nkeep 2"
    assert without_noise(text) == "keep 1\nkeep 2"


def test_a_closed_stderr_loads_the_package_as_usual(tmp_path):
    _noisy_package(tmp_path, "noisy_pkg", "VALUE = 7")
    code = """
        import os, sys
        from microspeech.cli.quiet_import import QuietImport
        sys.meta_path.insert(0, QuietImport(["noisy_pkg"]))
        os.close(2)
        sys.stderr = None
        import noisy_pkg
        print(noisy_pkg.VALUE)
    """
    result = _run(code, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.split() == ["7"]
