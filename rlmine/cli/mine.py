"""``rlmine mine`` and ``rlmine tactics list/show``: the miner from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rlmine.cli.options import DbOption, JsonOption, RayAddressOption, open_store
from rlmine.cli.output import console, df_records, print_json
from rlmine.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from miner.pipeline import MiningResult

tactics_app = typer.Typer(
    help="Browse the tactics found by `rlmine mine`, and correct them (merge, rename).", no_args_is_help=True
)


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return format(value, spec)


def _first_line(code: str, limit: int = 60) -> str:
    line = next((x.strip() for x in code.splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def mine_cmd(
    task: str | None = typer.Option(None, "--task", help="Mine only this task's runs (name or id)."),
    embedder: str = typer.Option(
        "minilm",
        "--embedder",
        help="Step embedder: minilm (all-MiniLM-L6-v2, offline) or hashing (fast, model-free).",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.01, max=1.0, help="Cosine distance at which tactics stop merging."
    ),
    shapes_only: bool = typer.Option(
        False,
        "--shapes-only",
        help="Keep code-shape clusters as tactics (skip joining shapes that feed each other).",
    ),
    label_model: str | None = typer.Option(
        None,
        "--label-model",
        help="Name tactics with this model (any --model of `rlmine record`, e.g. sim or gpt-4o-mini).",
    ),
    api_base: str | None = typer.Option(
        None, "--api-base", help="OpenAI-compatible endpoint for --label-model."
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="Where new steps are embedded: local (this process) or ray (Ray actors; pip install 'rlmine\\[ray]').",
    ),
    ray_address: str | None = RayAddressOption,
    ray_actors: int = typer.Option(
        2, "--ray-actors", min=1, help="Ray only: embedding actors (each loads the model once)."
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Mine tactics: split code into steps, embed, cluster, and find the sequences that succeed."""
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from miner.cluster import ClusterOptions
    from miner.pipeline import MineOptions, mine

    if executor not in ("local", "ray"):
        raise UserError(f"unknown executor {executor!r}", "--executor one of: local, ray")
    if executor == "local" and ray_address is not None:
        raise UserError("--ray-address is for the Ray executor only", "adding --executor ray")
    ray_embedder = None
    if executor == "ray":
        from miner.ray_embed import RayEmbedder

        ray_embedder = RayEmbedder(embedder, actors=ray_actors, address=ray_address)
    store = open_store(db)
    shape = ClusterOptions() if threshold is None else ClusterOptions(threshold=threshold)
    if shapes_only:
        shape = ClusterOptions(threshold=shape.threshold, dataflow_share=None)
    options = MineOptions(cluster=shape)
    out = console()
    bar = Progress(
        TextColumn("[bold]embedding steps"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=as_json,
    )
    job = bar.add_task("embed", total=None)

    def on_progress(phase: str, done: int, total: int) -> None:
        bar.update(job, completed=done, total=total)

    namer = lm_asker(label_model, api_base) if label_model else None
    with ray_embedder or nullcontext(), bar:
        result = mine(
            store,
            task=task,
            embedder=ray_embedder or embedder,
            options=options,
            progress=on_progress,
            namer=namer,
        )
    if as_json:
        print_json(result.to_json())
        return
    _report(result)


def lm_asker(model: str, api_base: str | None, *, max_tokens: int = 30) -> Callable[[str], str]:
    """A prompt -> reply function over one of the recorder's LM backends (temperature 0)."""
    from recorder.lm.base import Message
    from recorder.lm.registry import make_lm

    lm = make_lm(model, role="sub", api_base=api_base)

    def ask(prompt: str) -> str:
        return lm.complete([Message("user", prompt)], temperature=0.0, max_tokens=max_tokens).text

    return ask


def _report(result: MiningResult) -> None:
    from rich.table import Table

    out = console()
    share = result.n_outliers / max(result.n_steps, 1)
    out.print(
        f"[bold]Mining {result.mining_id}[/]: {result.n_runs} runs, {result.n_steps:,} steps "
        f"({result.n_distinct:,} distinct, {result.n_embedded:,} embedded now), "
        f"{len(result.tactics)} tactics, {result.n_outliers:,} rare steps ({share:.0%}), "
        f"base success rate {_fmt(result.base_rate, '.0%')}"
    )
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")
    table = Table(title="Tactics", title_justify="left")
    for col in ("id", "name", "steps", "runs", "success", "lift", "example"):
        table.add_column(col, justify="right" if col in ("steps", "runs", "success", "lift") else "left")
    for t in result.tactics[:25]:
        table.add_row(
            t.id,
            t.label,
            f"{t.size:,}",
            str(t.n_runs),
            _fmt(t.success_rate, ".0%"),
            _fmt(t.lift),
            _first_line(t.example),
        )
    out.print(table)
    if len(result.tactics) > 25:
        out.print(f"… and {len(result.tactics) - 25} more: `rlmine tactics list`")
    names = {t.id: t.label for t in result.tactics}
    seqs = Table(title="Top sequences", title_justify="left")
    for col in ("sequence", "runs", "success", "lift"):
        seqs.add_column(col, justify="left" if col == "sequence" else "right")
    for p in sorted(result.patterns, key=lambda p: (-p.support * len(p.tactics), p.tactics))[:8]:
        seqs.add_row(" → ".join(p.tactics), str(p.support), _fmt(p.success_rate, ".0%"), _fmt(p.lift))
    out.print(seqs)
    if result.consensus:
        out.print("[bold]Consensus plan[/] (the dominant approach of the successful runs):")
        for i, tid in enumerate(result.consensus, start=1):
            out.print(f"  {i}. {tid}  {names.get(tid, '')}")
    else:
        out.print("No consensus plan: no run is marked correct (score runs with `rlmine score`).")


@tactics_app.command("list")
def list_cmd(
    task: str | None = typer.Option(None, "--task", help="Tactics of this task's latest mining."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List the tactics of the latest mining (of a task)."""
    from rich.table import Table

    from rlmine.store import latest_mining, list_tactics, task_id_for

    store = open_store(db)
    with store.reader() as con:
        task_id = task_id_for(con, task) if task else None
        mining = latest_mining(con, task_id=task_id)
        if mining is None and task_id is not None:  # a mining of all runs covers the task too
            mining = latest_mining(con, task_id=None, exact_scope=True)
        if mining is None:
            raise NotFoundError("no mining in this database yet", "`rlmine mine` first")
        df = list_tactics(con, str(mining["id"]))
    if as_json:
        print_json({"mining_id": mining["id"], "task_id": mining["task_id"], "tactics": df_records(df)})
        return
    table = Table(title=f"Tactics of mining {mining['id']}", title_justify="left")
    for col in ("id", "name", "steps", "runs", "success", "lift", "median iters", "example"):
        table.add_column(col)
    for row in df.to_dict("records"):
        table.add_row(
            str(row["id"]),
            str(row["label"]),
            f"{row['size']:,}",
            str(row["n_runs"]),
            _fmt(row["success_rate"], ".0%"),
            _fmt(row["lift"]),
            _fmt(row["median_iterations"], ".0f"),
            _first_line(str(row["example"])),
        )
    console().print(table)


@tactics_app.command("show")
def show_cmd(
    tactic_id: str = typer.Argument(..., help="Tactic id, e.g. T3 (see `rlmine tactics list`)."),
    limit: int = typer.Option(5, "--members", min=0, help="Distinct member steps to show."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one tactic: name, keywords, statistics, its medoid example and member steps."""
    from rich.syntax import Syntax

    from rlmine.store import get_tactic, tactic_members

    store = open_store(db)
    with store.reader() as con:
        tactic = get_tactic(con, tactic_id)
        members = tactic_members(con, str(tactic["mining_id"]), str(tactic["id"]), limit=limit)
    if as_json:
        print_json({**tactic, "member_steps": df_records(members)})
        return
    out = console()
    keywords = ", ".join(json.loads(tactic["keywords"] or "[]"))
    out.print(
        f"[bold]{tactic['id']}[/] {tactic['label']}  (task {tactic['task'] or tactic['task_id'] or 'all'})"
    )
    out.print(
        f"steps {tactic['size']:,} in {tactic['n_runs']} runs · success {_fmt(tactic['success_rate'], '.0%')}"
        f" · lift {_fmt(tactic['lift'])} · median iterations {_fmt(tactic['median_iterations'], '.0f')}"
        f" · LLM calls {_fmt(tactic['median_llm_calls'], '.0f')} · tokens {_fmt(tactic['median_tokens'], ',.0f')}"
    )
    out.print(f"keywords: {keywords}")
    out.print("[bold]example[/] (medoid):")
    out.print(Syntax(str(tactic["example"]), "python", theme="ansi_dark", word_wrap=True))
    for row in members.to_dict("records"):
        verdict = {True: "correct", False: "wrong"}.get(row["correct"], "unscored")
        out.print(
            f"[dim]run {row['run_id']} iteration {row['iteration']} lines {row['line_start']}-{row['line_end']} ({verdict})[/]"
        )
        out.print(Syntax(str(row["code"]), "python", theme="ansi_dark", word_wrap=True))


def register(app: typer.Typer) -> None:
    app.command("mine")(mine_cmd)
    app.add_typer(tactics_app, name="tactics")
