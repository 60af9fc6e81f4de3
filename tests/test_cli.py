"""The runtime CLI (`python -m runtime`): option parsing by declared type, where samples go,
and clear errors instead of tracebacks. Each test is one of the known CLI problems or a
neighbour of one; they run in-process (fast) except where a fresh process is the point."""
import os
import subprocess
import sys

import pytest

import runtime
from runtime.__main__ import _declared, main, parse_options
from tests.conftest import ROOT, require_kind


def test_repeated_history_collects_the_values_with_their_types():
    """`--history 3 --history 17` (as the README documents) gives [3, 17], not ["3", "17"]."""
    assert parse_options(["--history", "3", "--history", "17"], _declared("recommend")) == \
        {"history": [3, 17]}
    assert parse_options(["--history=[3, 17]", "--history", "42"], _declared("recommend")) == \
        {"history": [3, 17, 42]}
    turns = parse_options(["--history", "I want thai food", "--history", "1984"],
                          _declared("dialogue"))
    assert turns == {"history": ["I want thai food", "1984"]}     # dialogue turns stay text


def test_string_options_keep_digits_as_text():
    """`--prompt 1984` is the prompt "1984", not the integer 1984; numbers stay numbers."""
    opts = parse_options(["--prompt", "1984", "--max_tokens", "5", "--temperature", "0.5"],
                         _declared("text"))
    assert opts == {"prompt": "1984", "max_tokens": 5, "temperature": 0.5}
    assert parse_options(["--stop", "42"], _declared("text")) == {"stop": ["42"]}


def test_one_value_option_given_twice_is_an_error():
    with pytest.raises(ValueError, match="--k given twice"):
        parse_options(["--k", "5", "--k", "6"], _declared("recommend"))
    with pytest.raises(ValueError, match="needs a value"):
        parse_options(["--k"], _declared("recommend"))


def test_generate_with_a_numeric_prompt_writes_the_sample(tmp_path, capsys):
    require_kind("text")
    target = tmp_path / "t.txt"
    rc = main(["generate", "text", "--prompt", "1984", "--max_tokens", "8", "--seed", "1",
               "--out", str(target)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f"wrote {target}" in out
    assert target.read_text(encoding="utf-8") == runtime.generate(
        "text", prompt="1984", max_tokens=8, seed=1)          # the prompt was read as text


def test_unwritable_default_out_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """Without --out the sample goes to out/KIND.SUFFIX; where that cannot be written the CLI
    says so and exits 2 (it died with a traceback). `out` here is a file, so no folder can be
    made there, as in a read-only working directory."""
    require_kind("text")
    (tmp_path / "out").write_text("not a folder")
    if os.geteuid() != 0:
        tmp_path.chmod(0o555)
    monkeypatch.chdir(tmp_path)
    rc = main(["generate", "text", "--max_tokens", "4", "--seed", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "cannot write out/text" in err and "--out" in err


def test_missing_media_extra_names_the_installable_extra(tmp_path, monkeypatch, capsys):
    """The message said pip install '.[media]', which only works inside a checkout."""
    require_kind("image")
    for name in ("PIL", "PIL.Image"):
        monkeypatch.setitem(sys.modules, name, None)      # import fails as if not installed
    rc = main(["generate", "image", "--n", "1", "--seed", "0", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "pip install 'rlgen[media]'" in err and "'.[media]'" not in err and "Pillow" in err


def test_bad_option_and_unknown_kind_exit_2_naming_them(capsys):
    require_kind("text")
    assert main(["generate", "text", "--max_tokens", "many"]) == 2
    assert "max_tokens" in capsys.readouterr().err
    assert main(["generate", "poetry"]) == 2
    assert "unknown kind 'poetry'" in capsys.readouterr().err


def test_list_counts_only_the_files_the_runtime_reads(capsys):
    """`list` leaves out optional files (the image discriminator) from sizes and names."""
    kinds = runtime.available()
    if not kinds:
        pytest.skip("no shipped models")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in kinds:
        files = runtime.info(kind)["files"]
        line = next(row for row in out.splitlines() if row.split()[0] == kind)
        used = sum(f["bytes"] for f in files.values() if not f.get("optional"))
        assert f"{used / 1e6:7.2f} MB" in line
        for f in files.values():
            assert (f["file"] in line) != bool(f.get("optional"))


@pytest.mark.slow
def test_cli_in_a_fresh_process_prints_no_traceback(tmp_path):
    require_kind("recommend")
    out = subprocess.run([sys.executable, "-m", "runtime", "generate", "recommend",
                          "--history", "3", "--history", "17", "--k", "5", "--seed", "0",
                          "--out", str(tmp_path / "slate.txt")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and (tmp_path / "slate.txt").exists()
