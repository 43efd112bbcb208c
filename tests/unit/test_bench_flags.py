"""The benchmark's server flags: limits an older chatsrv does not have are left out, and abuse puts limits back.

No server is started: chatsrv's --help text is given to the cache the launchers read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from lanchat_bench import launchers  # scripts/ is not on the default path
from lanchat_bench.scenarios import REGISTRY


def options(help_text: str | None, tmp_path: Path) -> argparse.Namespace:
    opts = argparse.Namespace(server_cmd=f"fake-chatsrv-{id(help_text)}", server_dir=tmp_path, db=":memory:",
                              server_arg=[])
    launchers._help_texts[(opts.server_cmd, str(tmp_path))] = help_text
    return opts


def test_flags_the_server_does_not_list_are_left_out(tmp_path: Path) -> None:
    old = options("  --max-per-ip N\n  --max-waiting N   total\n", tmp_path)
    # --max-waiting-per-ip is not a word of the help text even though --max-waiting is.
    assert launchers.known_flags(old, ["--max-waiting-per-ip", "0", "--max-waiting", "5"]) == ["--max-waiting", "5"]
    unknown = options(None, tmp_path)
    assert launchers.known_flags(unknown, ["--max-waiting-per-ip", "0"]) == ["--max-waiting-per-ip", "0"]


def test_lanchat_gets_the_caps_off_then_the_scenario_flags(tmp_path: Path) -> None:
    new = options("--max-per-ip --max-waiting-per-ip --hello-timeout --rate --burst --max-clients", tmp_path)
    command = launchers.LanchatServer(tmp_path, new, REGISTRY["abuse"].server_args).command()
    tail = command[command.index("--port"):]
    # The benchmark turns limits off; abuse's flags come later, so they win (argparse keeps the last).
    assert tail.index("--max-waiting-per-ip") < len(tail) - 1 - tail[::-1].index("--max-waiting-per-ip")
    assert tail[len(tail) - 1 - tail[::-1].index("--max-per-ip") + 1] == "16"
    assert tail[len(tail) - 1 - tail[::-1].index("--hello-timeout") + 1] == "5"
    others = launchers.LanchatServer(tmp_path, new).command()
    assert "--hello-timeout" not in others and others[others.index("--max-waiting-per-ip") + 1] == "0"


def test_abuse_measures_lanchat_alone_even_with_vs() -> None:
    from lanchat_bench.runner import plan

    runs = plan(argparse.Namespace(vs=True, scenarios=["abuse", "fanout"], repeat=1, conns=[]))
    assert [kind for name, kind, _, _ in runs if name == "abuse"] == ["lanchat"]
    assert [kind for name, kind, _, _ in runs if name == "fanout"] == list(launchers.SERVER_KINDS)


def test_nodes_run_as_chatsrv_workers_joined_by_the_backplane(tmp_path: Path) -> None:
    opts = options("--rate --max-clients", tmp_path)
    assert "--workers" not in launchers.LanchatServer(tmp_path, opts).command()
    opts.nodes, opts.backplane = 2, "redis://127.0.0.1:6379/0"
    command = launchers.LanchatServer(tmp_path, opts).command()
    assert command[command.index("--backplane") + 1] == "redis://127.0.0.1:6379/0"
    assert command[command.index("--workers") + 1] == "2"


def test_cpu_of_a_process_counts_its_children() -> None:
    import os
    import subprocess
    import time

    from lanchat_bench import procstat

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 10
        while (procstat.cpu_seconds(os.getpid()) or 0) - (procstat._own_cpu_seconds(os.getpid()) or 0) < 0.05:
            assert time.monotonic() < deadline, "the busy child's CPU was not counted"
            time.sleep(0.02)
        assert child.pid in procstat.process_tree(os.getpid())
    finally:
        child.kill()
        child.wait(10)


def test_lanchat_start_up_lines_are_english_whatever_the_locale(tmp_path: Path) -> None:
    """ready() reads "listening on HOST port N": under a Chinese locale chatsrv would translate it."""
    new = options("--max-per-ip --max-waiting-per-ip --lang LANG", tmp_path)
    command = launchers.LanchatServer(tmp_path, new).command()
    assert command[command.index("--lang") + 1] == "en"
    old = options("--max-per-ip --max-waiting-per-ip", tmp_path)
    assert "--lang" not in launchers.LanchatServer(tmp_path, old).command()
