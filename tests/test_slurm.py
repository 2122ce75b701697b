"""End to end on a real Slurm: the workflow's jobs are submitted with sbatch and run by slurmd.

Needs a running single-node Slurm (``.ci/slurm-up.sh`` starts one on loopback); skipped where
``sinfo`` is missing or no idle node answers.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import snakemake
import yaml

from facesym.resources import default_cache_dir, fetch_resource

REPO = Path(__file__).resolve().parents[1]
PARTITION = "debug"
TIMEOUT_S = 600
# The node of .ci/slurm-up.sh has CPUs=2 and RealMemory=8000; the rules ask for up to 8000 MB
# (render), so every job would hold the whole node. The tiny study needs far less: cap each
# rule's request so that jobs fit side by side (rules themselves stay untouched).
MEM_MB = {"fetch_resource": 1000, "face_model": 2000, "scenes": 1000, "render": 2000,
          "classify": 2000, "contact_sheet": 2000, "stats": 1000, "manipulation_check": 1000}
SLURM_RULES = ("face_model", "scenes", "render", "classify", "stats")

pytestmark = pytest.mark.slow


def _node_state() -> str:
    """The node state `sinfo` reports for the partition ('' when Slurm does not answer)."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _slurm_available() -> str | None:
    """None when a Slurm node can take jobs, else why the test is skipped."""
    if shutil.which("sinfo") is None:
        return "sinfo not on PATH (no Slurm; start one with .ci/slurm-up.sh)"
    states = _node_state().split()
    if not any(s.startswith(("idle", "mixed")) for s in states):
        return f"no idle Slurm node in partition {PARTITION!r} (sinfo: {states or 'no answer'})"
    return None


def _tail(text: str, n: int = 4000) -> str:
    return text[-n:] if text else ""


def _cancel_jobs_in(workdir: Path) -> None:
    """Cancel Slurm jobs left running from ``workdir`` (after a timeout)."""
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    ids = [line.split()[0] for line in out.splitlines()
           if len(line.split()) == 2 and Path(line.split()[1]) == workdir]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=10, check=False)


def _run(cmd: list[str], workdir: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``cmd`` in its own process group; kill the whole group on timeout.

    Snakemake can ignore SIGTERM while it waits on a status check, hence SIGKILL.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=workdir, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        _cancel_jobs_in(workdir)
        pytest.fail(f"snakemake on Slurm hung for more than {TIMEOUT_S} s\n"
                    f"--- stdout ---\n{_tail(out)}\n--- stderr ---\n{_tail(err)}")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def slurm() -> None:
    reason = _slurm_available()
    if reason and os.environ.get("FACESYM_REQUIRE_SLURM"):
        pytest.fail(f"FACESYM_REQUIRE_SLURM is set but {reason}")
    if reason:
        pytest.skip(reason)


def test_workflow_runs_through_slurm(slurm: None, tmp_path: Path):
    cache = default_cache_dir()
    for rid in ("ict_facekit", "fer"):
        fetch_resource(rid, cache)
    work = tmp_path / "study"
    work.mkdir()
    logdir = tmp_path / "slurm_logs"
    cfg = {
        "study": "tiny_slurm",
        "scenes": {"faces_per_emotion": 2, "emotions": ["happiness", "neutral"]},
        "face_model": {"identity_modes": 5},
        "intervention": {"strengths": [0.0, 1.0]},
        "render": {"size": 64, "batch_size": 8},
        "classifiers": ["mini_xception"],
        "resources": {"cache_dir": str(cache)},
        "contact_sheet": {"faces": [0]},
    }
    (work / "tiny.yaml").write_text(yaml.safe_dump(cfg))

    # The jobs run `<this python> -m snakemake` inside Slurm (sbatch --export=ALL), so the
    # venv's interpreter and the facesym package come along with PATH/VIRTUAL_ENV.
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.pop("SLURM_JOB_ID", None)  # not a nested allocation, even when CI itself runs in one

    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(work),
        "--configfile", str(work / "tiny.yaml"),
        "--executor", "slurm",
        "--jobs", "4",
        "--slurm-no-account",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1",
        "--slurm-logdir", str(logdir),
        "--slurm-keep-successful-logs",
        "--default-resources", f"slurm_partition={PARTITION}", "mem_mb=1000", "runtime=30",
        "--set-resources", *(f"{rule}:mem_mb={mb}" for rule, mb in MEM_MB.items()),
        "--latency-wait", "5",
        "--show-failed-logs",
    ]
    code, out, err = _run(cmd, work, env)
    assert code == 0, (f"snakemake exited {code}\n--- stdout ---\n{_tail(out)}\n"
                       f"--- stderr ---\n{_tail(err)}")

    stats = work / "results" / "tiny_slurm" / "stats"
    for name in ("summary.csv", "dose_response.png"):
        assert (stats / name).is_file(), name
    assert (stats / "dose_response.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work / "results" / "tiny_slurm" / "contact_sheet.png").is_file()

    # The jobs went through Slurm: the executor keeps one log per job, named by its Slurm job
    # id, under <logdir>/rule_<rule>/...; each log is the job's output as written by slurmd.
    job_ids: dict[str, list[str]] = {}
    for log in logdir.rglob("*.log"):
        rule_dir = log.relative_to(logdir).parts[0]
        if re.fullmatch(r"\d+", log.stem):
            job_ids.setdefault(rule_dir.removeprefix("rule_"), []).append(log.stem)
    for rule in SLURM_RULES:
        assert job_ids.get(rule), f"no Slurm log for rule {rule} in {logdir}: {job_ids}"
    # ... and ran the Slurm jobstep executor inside the allocation, with the venv's snakemake.
    render_log = next((logdir / "rule_render").rglob(f"{job_ids['render'][0]}.log")).read_text()
    assert "--executor slurm-jobstep" in render_log, _tail(render_log)
    assert "rule render:" in render_log, _tail(render_log)
    assert str(Path(snakemake.__file__).parent) in render_log, _tail(render_log)

    # Slurm itself knows the jobs (kept MinJobAge seconds after the end) and they completed.
    render_id = job_ids["render"][0]
    show = subprocess.run(["scontrol", "show", "job", render_id], capture_output=True,
                          text=True, timeout=10)
    if show.returncode == 0:  # else already purged from slurmctld's memory (MinJobAge)
        assert "JobState=COMPLETED" in show.stdout, show.stdout
        assert f"WorkDir={work.resolve()}" in show.stdout, show.stdout
