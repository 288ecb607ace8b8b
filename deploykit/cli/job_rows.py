"""``deploykit build``'s progress: one live row per job (waiting, running with its elapsed time, then its result).

On a terminal the rows are a rich ``Live`` table redrawn in place; elsewhere (CI logs) each job prints one
line when it starts and one when it ends, so a log shows the same story in order. Steps that are not jobs
(bundling, publishing) go through ``StepProgress`` as in every other command.
"""

from __future__ import annotations

import time

from deploykit.cli.output import StepProgress, terminal


class JobRows(StepProgress):
    def __init__(self, quiet: bool = False):
        super().__init__(quiet)
        self._rows: dict[str, list] = {}  # id -> [state, started, detail]
        self._live = None

    # -- the hooks the executors call (deploykit.orchestration.run) --------------------------------------
    def jobs_planned(self, ids) -> None:
        self._rows = {job_id: ["waiting", None, ""] for job_id in ids}
        if self.quiet or not self._rows:
            return
        console = terminal()
        if console.is_terminal:
            from rich.live import Live

            self._live = Live(self._table(), console=console, refresh_per_second=4, transient=False,
                              get_renderable=self._table)
            self._live.start()

    def job_started(self, job_id: str) -> None:
        row = self._rows.setdefault(job_id, ["waiting", None, ""])
        row[0], row[1] = "running", time.perf_counter()
        if not self.quiet and self._live is None:
            terminal().print(f"… {job_id} started")

    def job_finished(self, job_id: str, status: str, seconds: float) -> None:
        row = self._rows.setdefault(job_id, ["waiting", None, ""])
        row[0], row[2] = status, f"{seconds} s"
        if not self.quiet and self._live is None:
            mark = "[green]✓[/]" if status == "ok" else "[red]✗[/]"
            terminal().print(f"{mark} {job_id}: {status} [dim]({seconds} s)[/]")

    def jobs_done(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _table(self):
        from rich.table import Table

        table = Table(show_header=True, header_style="bold")
        table.add_column("job")
        table.add_column("state")
        table.add_column("time", justify="right")
        colours = {"waiting": "dim", "running": "yellow", "ok": "green"}
        for job_id, (state, started, detail) in self._rows.items():
            elapsed = f"{time.perf_counter() - started:.0f} s" if state == "running" and started else detail
            table.add_row(job_id, f"[{colours.get(state, 'red')}]{state}[/]", elapsed)
        return table
