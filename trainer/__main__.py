"""Trainer CLI.

    python -m trainer train KIND|all [--profile quick|full] [--out DIR] [--work DIR] [--seed N]
                                     [--strategy default|mirrored|multiworker] [--set key=value]
    python -m trainer eval KIND|all [--profile ...]     # prints metrics and stores them
    python -m trainer export KIND|all [--profile ...] [--ort]

``train`` runs train -> export -> evaluate -> store metrics -> model card for each kind.
Training resumes from the last checkpoint in the work dir (default ``runs/<kind>/<profile>``).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = {
    "text": "trainer.text",
    "image": "trainer.image",
    "video": "trainer.video",
    "level": "trainer.level",
    "music": "trainer.music",
    "dialogue": "trainer.dialogue",
    "recommend": "trainer.recommend",
}
# Order for "all": video's first frames come from the image generator.
ORDER = ["text", "image", "video", "level", "music", "dialogue", "recommend"]


def _module(kind: str):
    if kind not in KINDS:
        raise SystemExit(f"unknown kind {kind!r}; choose from {', '.join(ORDER)} or 'all'")
    return importlib.import_module(KINDS[kind])


def _config(mod, profile: str, seed: int | None, overrides: list[str], corpus=None):
    if profile not in mod.PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; choose from {', '.join(mod.PROFILES)}")
    cfg = mod.PROFILES[profile]
    changes = {}
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set expects key=value with key in {', '.join(fields)}; got {item!r}")
        try:
            changes[key] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key] = raw
    if seed is not None:
        changes["seed"] = seed
    if corpus and "corpus" in fields:
        changes["corpus"] = os.path.abspath(corpus)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _files_of(out_dir: Path, kind: str) -> dict:
    from trainer.export import read_manifest

    return read_manifest(out_dir)["models"].get(kind, {}).get("files", {})


def run(command: str, kind: str, args) -> dict | None:
    from trainer import common
    from trainer.export import update_metrics

    mod = _module(kind)
    cfg = _config(mod, args.profile, args.seed, args.set, args.corpus)
    work = Path(args.work) / kind / args.profile if args.work else ROOT / "runs" / kind / args.profile
    out = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    strategy = common.make_strategy(args.strategy)
    print(f"== strategy {type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) "
          f"in sync", file=sys.stderr)
    t0 = time.time()
    metrics = None
    if command == "train":
        print(f"== {kind}: training ({args.profile}) in {work}", file=sys.stderr)
        mod.train(cfg, work, strategy=strategy)
        if not common.is_chief(strategy):
            return None
    if command in ("train", "export"):
        print(f"== {kind}: exporting to {out}", file=sys.stderr)
        mod.export(cfg, work, out)
        if args.ort:
            from trainer.edge import export_ort
            export_ort(out, kinds=[kind])
    if command in ("train", "eval"):
        print(f"== {kind}: evaluating", file=sys.stderr)
        metrics = mod.evaluate(cfg, work, out)
        update_metrics(out, kind, metrics)
        common.save_json(work / "metrics.json", metrics)
        common.write_model_card(work / "model_card.md", kind, cfg, metrics, _files_of(out, kind),
                                data=getattr(mod, "DATA", ""))
        print(json.dumps({kind: metrics}, indent=2, default=str))
    print(f"== {kind}: {command} done in {time.time() - t0:.1f}s", file=sys.stderr)
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "eval", "export"])
    parser.add_argument("kind", help=f"one of {', '.join(ORDER)} or 'all'")
    parser.add_argument("--profile", default="full", help="quick (tests) or full (shipped models)")
    parser.add_argument("--out", default=str(ROOT / "exported"), help="models directory")
    parser.add_argument("--work", default=None, help="checkpoints/curves dir (default runs/)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--strategy", default="default",
                        choices=["default", "mirrored", "multiworker"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (JSON value), repeatable")
    parser.add_argument("--corpus", default=None, help="text: a UTF-8 corpus file")
    parser.add_argument("--ort", action="store_true",
                        help="export: also write .ort files + required-operators config")
    args = parser.parse_args(argv)
    kinds = ORDER if args.kind == "all" else [args.kind]
    for kind in kinds:
        run(args.command, kind, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
