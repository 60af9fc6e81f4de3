"""The generated docs (options reference, model cards) match their sources."""
from trainer import docs


def test_generated_docs_are_up_to_date():
    stale = [str(p.relative_to(docs.ROOT)) for p in docs.outdated()]
    assert not stale, f"regenerate with `python -m trainer.docs`: {stale}"


def test_options_reference_lists_every_option():
    import runtime

    text = docs.options_reference()
    for kind in runtime.KINDS:
        for option in runtime.model_class(kind).options:
            assert f"| `{option.name}` |" in text, (kind, option.name)


def test_docs_generator_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, trainer.docs; trainer.docs.options_reference(); "
            "trainer.docs.model_cards(); assert 'tensorflow' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=docs.ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
