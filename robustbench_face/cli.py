"""``rbf``: a thin Typer layer; each command forwards to a public function of the same name.

Library errors (:class:`RbfError`) become one line on stderr and exit status 2; nothing
already written to the results CSV is touched.
"""

from __future__ import annotations

import logging
import sys
from typing import List, Optional

import typer

from .errors import RbfError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Adversarial robustness benchmarks for face, re-ID and affect models.")
KINDS = ("victims", "attacks", "defenses", "datasets")


@app.command()
def run(
    attack: str = typer.Option(..., help="attack name, or 'none' for a clean run"),
    victim: str = typer.Option(..., help="attacked victim, e.g. osnet_x0_25.market1501"),
    dataset: str = typer.Option("mini_mars", help="dataset name"),
    eval_victim: List[str] = typer.Option([], "--eval-victim", help="extra victims scored on the same adversarial inputs (transfer)"),
    defense: List[str] = typer.Option([], "--defense", help="NAME[:key=value,...]; repeat to stack"),
    mode: Optional[str] = typer.Option(None, help="reid: evasion|impersonation; face: dodging|impersonation; affect: untargeted|targeted"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
    limit: Optional[int] = typer.Option(None, help="attack only the first N queries"),
    out: str = typer.Option("runs/results.csv", help="results CSV to append to"),
    data_root: Optional[str] = typer.Option(None, help="dataset folder anywhere on disk"),
    attack_arg: List[str] = typer.Option([], "--attack-arg", "-a", help="attack option key=value (eps=8/255, steps=20, region=torso); `rbf list attacks` names them"),
    batch_size: int = typer.Option(32),
    target_class: Optional[str] = typer.Option(None, help="affect targeted mode: class, quadrant or AU pattern"),
    adaptive: str = typer.Option("auto", help="defended victims: auto (BPDA/EOT when a defense needs it) | yes | no"),
    eot_draws: int = typer.Option(10, help="EOT draws for randomised defenses in the adaptive attack"),
    sanity: bool = typer.Option(False, help="also craft on the undefended victim (transfer red flag)"),
    far: Optional[float] = typer.Option(None, help="faces: FAR at which the threshold is calibrated on clean pairs (default 1e-3)"),
    split: Optional[str] = typer.Option(None, help="affect / face: evaluate only this split (e.g. orl's holdout people)"),
    wide: bool = typer.Option(False, "--wide", help="print every column, not the compact table"),
):
    """Attack a victim on a dataset, score every victim, append rows to the results CSV."""
    from .runner import RunConfig, parse_kv
    from .runner import run as run_

    task_options = {k: v for k, v in (("far", far), ("split", split), ("target_class", target_class))
                    if v is not None}
    cfg = RunConfig(attack=attack, victim=victim, dataset=dataset, eval_victims=eval_victim,
                    defenses=defense, mode=mode, seed=seed, device=device, limit=limit,
                    out=out, data_root=data_root, attack_args=parse_kv(attack_arg),
                    batch_size=batch_size, adaptive=adaptive, eot_draws=eot_draws,
                    sanity=sanity, task_options=task_options)
    try:
        rows = run_(cfg)
    except KeyboardInterrupt:
        # rows are appended in one atomic write at the end: an interrupted run wrote none
        typer.echo(f"interrupted: 0 rows written; {out} is unchanged", err=True)
        raise typer.Exit(130)
    from .table import print_rows

    print_rows(rows, wide_table=wide)
    typer.echo(f"appended {len(rows)} row(s) to {out}")


@app.command()
def interpret(
    victim: str = typer.Option(..., help="attacked victim"),
    attack: str = typer.Option(..., help="attack name, or 'none' (the negative control)"),
    dataset: str = typer.Option("mini_mars"),
    mode: Optional[str] = typer.Option(None, help="as in rbf run"),
    layer: str = typer.Option("-1", help="module name, or -1: the deepest with a spatial 4-D output"),
    attack_arg: List[str] = typer.Option([], "--attack-arg", "-a", help="attack option key=value, as in rbf run"),
    limit: Optional[int] = typer.Option(None, help="a seeded subset, as in rbf run"),
    k: str = typer.Option("auto", "--k", help="second clustering: auto (best silhouette in 2..8) or 2..8"),
    seed: int = typer.Option(0),
    out: str = typer.Option("runs/interpret", help="output folder (CSVs appended, figures/)"),
    top_k: int = typer.Option(10, help="channels restored in the causal check and compared across runs"),
    n_random: int = typer.Option(5, help="random channel sets for the causal check's baseline"),
    compare: List[str] = typer.Option([], "--compare", help="earlier rbf interpret folders: top-k overlap"),
    defense: List[str] = typer.Option([], "--defense", help="as in rbf run"),
    device: str = typer.Option("cpu"),
    batch_size: int = typer.Option(32),
    data_root: Optional[str] = typer.Option(None),
    far: Optional[float] = typer.Option(None, help="faces: as in rbf run"),
    split: Optional[str] = typer.Option(None, help="affect / face: as in rbf run"),
    target_class: Optional[str] = typer.Option(None, help="affect targeted mode: as in rbf run"),
    figures: bool = typer.Option(True, help="draw the figures (matplotlib)"),
):
    """Cluster a layer's activations on clean and adversarial inputs, rank channels, map where
    the change sits, and restore the top channels (docs/interpret.md)."""
    from .interpret import InterpretConfig, run_interpret
    from .runner import parse_kv

    task_options = {k_: v for k_, v in (("far", far), ("split", split), ("target_class", target_class))
                    if v is not None}
    cfg = InterpretConfig(victim=victim, attack=attack, dataset=dataset, mode=mode, layer=layer,
                          attack_args=parse_kv(attack_arg), limit=limit, k=k, seed=seed, out=out,
                          top_k=top_k, n_random=n_random, device=device, batch_size=batch_size,
                          defenses=defense, task_options=task_options, data_root=data_root,
                          compare=compare, figures=figures)
    r = run_interpret(cfg).row
    typer.echo(f"{r['attack']} on {r['victim']}, layer {r['layer']} ({r['layer_shape']}), {r['n_inputs']} inputs: "
               f"k=2 purity {r['k2_purity']:.3f} (ARI {r['k2_ari']:.3f}), best k={r['best_k']} purity "
               f"{r['best_purity']:.3f}; top channels {r['top_channels']}; patch_mass {r['patch_mass']:.3f} "
               f"({r['region_source']}); top-{r['restore_k']} restore recovers {r['recovered_top']:.3f} of "
               f"{r['causal_metric']} (random {r['recovered_random_mean']:.3f}); written to {out}")


@app.command()
def train(
    attack: str = typer.Argument(..., help="trainable attack, e.g. cond_patch or patch_universal"),
    victim: List[str] = typer.Option(..., "--victim", help="surrogate victim(s); repeat for an ensemble"),
    dataset: str = typer.Option("mini_mars"),
    split: str = typer.Option("train", help="train on this split only"),
    steps: int = typer.Option(2000),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
    out: Optional[str] = typer.Option(None, help="checkpoint path (.safetensors)"),
    resume: bool = typer.Option(False, help="continue from --out if it exists"),
    data_root: Optional[str] = typer.Option(None),
    attack_arg: List[str] = typer.Option([], "--attack-arg", "-a", help="training hyper-parameter key=value (as in rbf run)"),
):
    """Train a learned attack (generator or universal patch) on a training split."""
    from .runner import parse_kv
    from .training import train as train_

    path = train_(attack, victims=victim, dataset=dataset, split=split, steps=steps, seed=seed,
                  device=device, out=out, resume=resume, data_root=data_root, **parse_kv(attack_arg))
    typer.echo(f"checkpoint written to {path}")


@app.command()
def demo(out: str = typer.Option("runs/demo.csv", help="the demo's own results CSV (never a leaderboard)"),
         seed: int = typer.Option(0), device: str = typer.Option("cpu")):
    """A small real run with no asset home: weights and a public-domain face from PyPI packages."""
    import time

    from .demo import demo as demo_
    from .table import print_rows

    t0 = time.perf_counter()
    rows = demo_(out=out, seed=seed, device=device)
    print_rows(rows)
    typer.echo(f"demo: {len(rows)} rows in {time.perf_counter() - t0:.0f} s, appended to {out} "
               "(demo rows are never put on a leaderboard)")


@app.command()
def fetch(name: str = typer.Argument(..., help="dataset name (its card gives the archive URL and sha256)")):
    """Download a dataset's public archive into the asset home: progress bar, sha256, resume."""
    from .fetch import fetch as fetch_

    typer.echo(f"{name} is in {fetch_(name)}")


@app.command("list")
def list_(kind: Optional[str] = typer.Argument(None, help="victims | attacks | defenses | datasets")):
    """List registered plugins with a one-line summary each."""
    from .registry import REGISTRIES

    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        if k not in REGISTRIES:
            raise RbfError(f"unknown kind {k!r}; use one of: {', '.join(KINDS)}")
        typer.echo(f"{k}:")
        for e in REGISTRIES[k].entries():
            where = e.module.removeprefix("robustbench_face.") if e.source == "builtin" else e.source
            typer.echo(f"  {e.name:<24} {where:<28} {e.summary}")


plugin_app = typer.Typer(help="Author third-party plugins.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("new")
def plugin_new(kind: str = typer.Argument(..., help="defense | attack | victim"),
               name: str = typer.Argument(..., help="plugin name (a Python identifier)"),
               dir: str = typer.Option(".", "--dir", help="where to create the package folder")):
    """Scaffold an installable plugin package (pyproject entry point, module, test, README)."""
    from .plugin import new_plugin

    root = new_plugin(kind, name, dir)
    typer.echo(f"created {root}; install it with: pip install -e {root}")


@app.command()
def leaderboard(results: Optional[str] = typer.Argument(None, help="results CSV (rbf run / rbf bench rows)"),
                out: Optional[str] = typer.Option(None, help="a folder (CSV, entries/*.json, .md, index.html) or a .csv"),
                task: Optional[str] = None, dataset: Optional[str] = None,
                allow_dirty: bool = typer.Option(False, help="publish rows of a dirty or unknown tree, flagged"),
                check: Optional[str] = typer.Option(None, "--check", help="validate one submitted entries/<id>.json")):
    """Publish a leaderboard from a results CSV, or check a submitted entry."""
    if check:
        from .publish import check_entry

        e = check_entry(check)
        typer.echo(f"{check}: valid entry {e['id']} ({e['spec']['attack']} on {e['spec']['victim']}, "
                   f"{len(e['seeds'])} seed(s), flags: {', '.join(e['flags']) or 'none'})")
        return
    if not results or not out:
        raise RbfError("rbf leaderboard needs RESULTS and --out (or --check ENTRY.json)")
    if out.endswith(".csv"):
        from .results import leaderboard as leaderboard_

        rows = leaderboard_(results, task=task, dataset=dataset, out=out, allow_dirty=allow_dirty)
        typer.echo(f"wrote {len(rows)} row(s) to {out}")
        return
    from .publish import publish

    ranked = publish(results, out, allow_dirty=allow_dirty)
    typer.echo(f"published {len(ranked)} entries to {out} (leaderboard.csv, leaderboard.md, index.html, entries/)")


@app.command()
def bench(spec: str = typer.Argument(..., help="grid spec, e.g. benchmarks/smoke.toml"),
          out: Optional[str] = typer.Option(None, help="output folder (default runs/bench/<name>)"),
          resume: bool = typer.Option(False, help="run only the cells not finished yet"),
          executor: str = typer.Option("local", help="local | ray")):
    """Run a benchmark grid: cells keyed by config hash, resumable, shared clean work, local or Ray."""
    from .bench import bench as bench_

    try:
        r = bench_(spec, out=out, resume=resume, executor=executor)
    except KeyboardInterrupt:
        typer.echo("interrupted: every finished cell is kept; continue with --resume", err=True)
        raise typer.Exit(130)
    typer.echo(f"bench {r['spec']}: {r['cells']} cells, {r['finished_before']} finished before, {r['ran']} run, "
               f"{r['failed']} failed, {r['seconds']} s; results in {r['results']}")


def main() -> None:
    from .interrupt import install

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install()  # a Ctrl-C swallowed by a third-party import is raised again at the next batch
    try:
        code = app(standalone_mode=False)
    except RbfError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:
        # usage errors come from the click that typer vendors; duck-type them, don't import it
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)  # typer returns an exit code (130 on Ctrl-C)


if __name__ == "__main__":
    main()
