"""End to end on a real Slurm: the workflow's jobs are submitted with sbatch and run by slurmd,
one job per shard of faces, with results equal to a local run byte for byte.

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

from facesym.cubes import open_cube
from facesym.resources import default_cache_dir, fetch_resource

REPO = Path(__file__).resolve().parents[1]
PARTITION = "debug"
TIMEOUT_S = 1500  # about 15 Slurm jobs one after another on a 2-CPU node, each a Python start
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


CONFIG = {
    "study": "tiny_slurm",
    "scenes": {"faces_per_emotion": 3, "emotions": ["happiness", "neutral"]},
    "face_model": {"identity_modes": 5},
    "intervention": {"strengths": [0.0, 1.0]},
    "render": {"size": 64, "batch_size": 8},
    "classifiers": ["mini_xception"],
    "contact_sheet": {"faces": [0]},
    "shards": {"faces_per_shard": 2},  # 6 faces: three shards
}
SHARDS = ("shard-00000", "shard-00001", "shard-00002")
SHARDED_RULES = ("scenes", "render", "classify")


def _study_dir(root: Path) -> Path:
    """A work folder holding the study config (resources from the shared, verified cache)."""
    cache = default_cache_dir()
    for rid in ("ict_facekit", "fer"):
        fetch_resource(rid, cache)
    work = root / "study"
    work.mkdir(parents=True)
    (work / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG,
                                                    "resources": {"cache_dir": str(cache)}}))
    return work


def _snakemake(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(work), "--configfile", str(work / "tiny.yaml"), *args]


@pytest.fixture(scope="module")
def slurm_run(slurm: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The study run through Slurm: (work folder, Slurm log folder, Snakemake's stderr)."""
    root = tmp_path_factory.mktemp("slurm")
    work = _study_dir(root)
    logdir = root / "slurm_logs"

    # The jobs run `<this python> -m snakemake` inside Slurm (sbatch --export=ALL), so the
    # venv's interpreter and the facesym package come along with PATH/VIRTUAL_ENV.
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.pop("SLURM_JOB_ID", None)  # not a nested allocation, even when CI itself runs in one

    cmd = _snakemake(
        work,
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
    )
    code, out, err = _run(cmd, work, env)
    assert code == 0, (f"snakemake exited {code}\n--- stdout ---\n{_tail(out)}\n"
                       f"--- stderr ---\n{_tail(err)}")
    return work, logdir, out + err


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same study run locally (no Slurm) for comparison."""
    work = _study_dir(tmp_path_factory.mktemp("local"))
    proc = subprocess.run(_snakemake(work, "--cores", "2"), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, _tail(proc.stderr)
    return work


def _slurm_jobs(logdir: Path) -> dict[str, dict[str, str]]:
    """{rule: {wildcards: Slurm job id}} from the executor's per-job logs.

    The executor keeps one log per job, named by its Slurm job id, under
    <logdir>/rule_<rule>/<wildcards>/<id>.log; each is the job's output as written by slurmd.
    """
    jobs: dict[str, dict[str, str]] = {}
    for log in logdir.rglob("*.log"):
        parts = log.relative_to(logdir).parts
        if re.fullmatch(r"\d+", log.stem):
            wildcards = "/".join(parts[1:-1])
            jobs.setdefault(parts[0].removeprefix("rule_"), {})[wildcards] = log.stem
    return jobs


def test_workflow_runs_through_slurm(slurm_run: tuple[Path, Path, str]):
    work, logdir, _ = slurm_run
    stats = work / "results" / "tiny_slurm" / "stats"
    for name in ("summary.csv", "dose_response.png"):
        assert (stats / name).is_file(), name
    assert (stats / "dose_response.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work / "results" / "tiny_slurm" / "contact_sheet.png").is_file()

    jobs = _slurm_jobs(logdir)
    for rule in SLURM_RULES:
        assert jobs.get(rule), f"no Slurm log for rule {rule} in {logdir}: {jobs}"
    # ... and ran the Slurm jobstep executor inside the allocation, with the venv's snakemake.
    render_id = next(iter(jobs["render"].values()))
    render_log = next((logdir / "rule_render").rglob(f"{render_id}.log")).read_text()
    assert "--executor slurm-jobstep" in render_log, _tail(render_log)
    assert "rule render:" in render_log, _tail(render_log)
    assert str(Path(snakemake.__file__).parent) in render_log, _tail(render_log)

    # Slurm itself knows the jobs (kept MinJobAge seconds after the end) and they completed.
    show = subprocess.run(["scontrol", "show", "job", render_id], capture_output=True,
                          text=True, timeout=10)
    if show.returncode == 0:  # else already purged from slurmctld's memory (MinJobAge)
        assert "JobState=COMPLETED" in show.stdout, show.stdout
        assert f"WorkDir={work.resolve()}" in show.stdout, show.stdout


def test_each_shard_ran_as_its_own_slurm_job(slurm_run: tuple[Path, Path, str]):
    """scenes, render and classify: one Slurm job per shard, each with its own job id, and
    Snakemake's log names the same external ids."""
    _, logdir, text = slurm_run
    jobs = _slurm_jobs(logdir)
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", text))
    ids: list[str] = []
    for rule in SHARDED_RULES:
        by_shard = {shard: [job for wc, job in jobs.get(rule, {}).items() if shard in wc]
                    for shard in SHARDS}
        assert all(len(found) == 1 for found in by_shard.values()), (rule, jobs.get(rule))
        ids += [found[0] for found in by_shard.values()]
        for shard, (job,) in by_shard.items():
            log = next((logdir / f"rule_{rule}").rglob(f"{job}.log")).read_text()
            assert f"shard={shard}" in log, _tail(log)
    assert len(set(ids)) == len(ids) == len(SHARDED_RULES) * len(SHARDS), ids
    assert set(ids) <= submitted, (sorted(ids), sorted(submitted))


def _stores(results: Path) -> dict[str, str]:
    """{store relative to results: its data_digest} of every Zarr store of a study."""
    out = {}
    for meta in results.rglob("zarr.json"):
        store = meta.parent
        if store.suffix == ".zarr":
            out[store.relative_to(results).as_posix()] = open_cube(store).attrs["data_digest"]
    return out


def test_slurm_results_equal_a_local_run(slurm_run: tuple[Path, Path, str], local_run: Path):
    """Byte for byte: every store's data digest and every CSV of the study."""
    slurm_res = slurm_run[0] / "results" / "tiny_slurm"
    local_res = local_run / "results" / "tiny_slurm"
    stores = _stores(slurm_res)
    assert {f"renders/{s}.zarr" for s in SHARDS} <= set(stores), sorted(stores)
    assert stores == _stores(local_res)
    csvs = sorted(p.relative_to(slurm_res) for p in slurm_res.rglob("*.csv"))
    assert len(csvs) >= 5, csvs
    for rel in csvs:
        assert (slurm_res / rel).read_bytes() == (local_res / rel).read_bytes(), rel


class _Resources(dict):
    def __getattr__(self, name: str) -> object:
        return self[name]


def test_gpu_shard_jobs_ask_slurm_for_one_gpu_each():
    """What the profile promises: a rule's ``gpu`` (1 per shard job with CUDA) becomes
    ``--gpus`` in the executor's sbatch call, ``gpu_model`` names the model, 0 asks for none."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string

    def sbatch_gpus(**resources: object) -> str:
        return set_gres_string(SimpleNamespace(resources=_Resources(resources))).strip()

    assert sbatch_gpus(gpu=1) == "--gpus=1"
    assert sbatch_gpus(gpu=1, gpu_model="a100") == "--gpus=a100:1"
    assert sbatch_gpus(gpu=0) == ""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    rules = {rule: (REPO / "rules" / f"{rule}.smk").read_text() for rule in ("render", "classify")}
    for rule, text in rules.items():
        assert 'shard=r"shard-\\d+"' in text and "gpu=1 if config[" in text, rule
