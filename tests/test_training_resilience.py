"""Training that survives: resume after SIGKILL, and two-worker MultiWorkerMirroredStrategy."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.tf, pytest.mark.slow]
KIND = "text"   # maximum likelihood then policy gradient: two models, two optimizers


def _trainer(args, env=None, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _checkpoint_steps(ckpt_dir: Path) -> list[int]:
    index = ckpt_dir / "checkpoint"
    if not index.exists():
        return []
    return [int(m) for m in re.findall(r'ckpt-(\d+)"', index.read_text())]


def test_killed_training_resumes_from_last_checkpoint(tmp_path):
    args = ["train", KIND, "--profile", "quick", "--work", str(tmp_path / "work"),
            "--out", str(tmp_path / "out"), "--set", "mle_steps=400", "--set", "ckpt_every=20"]
    ckpt_dir = tmp_path / "work" / KIND / "quick" / "checkpoints"
    proc = _trainer(args)
    deadline = time.time() + 240
    while time.time() < deadline and not [s for s in _checkpoint_steps(ckpt_dir) if s >= 50]:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(_checkpoint_steps(ckpt_dir))
    assert 50 <= killed_at < 400, "the run should be killed part way"

    proc = _trainer(args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    resumed = re.search(r"resumed from \S+ \(step (\d+)\)", err)
    assert resumed, err[-3000:]
    assert int(resumed.group(1)) >= killed_at          # not from scratch
    assert max(_checkpoint_steps(ckpt_dir)) >= 400      # and it finished the schedule
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["models"][KIND]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_over_loopback_end_with_identical_weights(tmp_path):
    tf = pytest.importorskip("tensorflow")
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        # text trains on one device (TBPTT streams); the GAN runs distributed
        procs.append(_trainer(["train", "image", "--profile", "quick", "--strategy", "multiworker",
                               "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
                               "--set", "steps=20", "--set", "calib_steps=4",
                               "--set", "ckpt_every=10"],
                              env={"TF_CONFIG": tf_config, "CUDA_VISIBLE_DEVICES": ""}))
    t0 = time.time()
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    print(f"two-worker quick run: {time.time() - t0:.1f}s")
    chief_log = outputs[0][1]
    assert "2 replica(s) in sync" in chief_log, chief_log[-2000:]   # both workers joined
    run_dir = tmp_path / "work" / "image" / "quick"
    chief = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    other = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(str(run_dir / "checkpoints-worker-1")))
    variables = tf.train.list_variables(str(run_dir / "checkpoints"))
    assert len(variables) > 10
    assert max(_checkpoint_steps(run_dir / "checkpoints")) >= 20   # it trained
    for name, _ in variables:
        if name.endswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            continue
        np.testing.assert_array_equal(chief.get_tensor(name), other.get_tensor(name), err_msg=name)
    assert (tmp_path / "out" / "manifest.json").exists()   # the chief exported
