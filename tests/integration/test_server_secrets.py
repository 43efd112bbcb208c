"""Server secrets out of the process list: --password-file, --op-secret-file and the environment."""

from __future__ import annotations

import argparse
import hmac
import subprocess
import sys
from pathlib import Path

import pytest

from chatsrv import access
from chatsrv.app import teacher_lines
from chatsrv.options import build_parser, take_secrets
from tests.helpers import Client
from tests.integration.test_cli import ENV, ROOT, finish, read_until, run_briefly

PASSWORD = "hunter2-in-a-file"
OP_SECRET = "chalk-in-a-file"


def start(flags: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int, list[str]]:
    """chatsrv as a process; returns it, its port and its start-up lines (up to 'Ctrl-C stops')."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chatsrv", "--db", ":memory:", "--host", "127.0.0.1", "--port", "0", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = read_until(process, r"Ctrl-C stops the server")
    port = next(int(line.split(" port ")[1].split()[0]) for line in lines if "listening on" in line)
    return process, port, lines


def joins_with(port: int, password: str | None) -> str:
    """`welcome`, or the error code, for a hello with `password`."""
    with Client(port) as client:
        client.send({"type": "hello", "nick": "guest", **({"password": password} if password else {})})
        return str(client.recv().get("code", "welcome"))


def test_password_file_keeps_the_password_out_of_cmdline_and_output(tmp_path: Path) -> None:
    """Started with --password-file, the password is neither in /proc/PID/cmdline nor in what it prints."""
    (tmp_path / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "op").write_text(OP_SECRET + "\n", encoding="utf-8")
    flags = ["--password-file", str(tmp_path / "password"), "--op-secret-file", str(tmp_path / "op")]
    process, port, lines = start(flags, ENV)
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert b"password-file" in cmdline and PASSWORD.encode() not in cmdline and OP_SECRET.encode() not in cmdline
        assert joins_with(port, None) == "auth_failed" and joins_with(port, "wrong") == "auth_failed"
        assert joins_with(port, PASSWORD) == "welcome"
        with Client(port) as teacher:
            teacher.send({"type": "hello", "nick": "teacher", "password": PASSWORD})
            teacher.expect("welcome")
            teacher.send({"type": "op", "secret": OP_SECRET})
            assert teacher.expect("notice")["event"] == "op"
        process.terminate()  # SIGTERM: the server logs its shutdown on stderr
        process.wait(10)
        assert process.stderr is not None
        output = "\n".join(lines) + process.stderr.read()
    finally:
        finish(process)
    assert "a password is needed to join (from --password-file)" in output
    assert PASSWORD not in output and OP_SECRET not in output


def test_secrets_from_the_environment(tmp_path: Path) -> None:
    """LANCHAT_PASSWORD and LANCHAT_OP_SECRET set the server's secrets; neither is printed."""
    env = {**ENV, "LANCHAT_PASSWORD": PASSWORD, "LANCHAT_OP_SECRET": OP_SECRET}
    process, port, lines = start([], env)
    try:
        assert PASSWORD not in "\n".join(lines) and OP_SECRET not in "\n".join(lines)
        assert "from LANCHAT_PASSWORD" in "\n".join(lines)
        assert joins_with(port, "wrong") == "auth_failed" and joins_with(port, PASSWORD) == "welcome"
    finally:
        finish(process)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--password-file", "/no/such/file"], "cannot read"),
        (["--op-secret-file", "/no/such/file"], "cannot read"),
        (["--password", "x", "--password-file", "/etc/hostname"], "not allowed with"),
    ],
)
def test_bad_secret_flags_exit_2_with_one_line(flags: list[str], words: str) -> None:
    """A missing secret file, or both a flag and a file: one line on stderr, exit 2."""
    result = run_briefly("-m", "chatsrv", *flags)
    assert result.returncode == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def parsed(argv: list[str], environ: dict[str, str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    take_secrets(args, environ, parser)
    return args


def test_flag_or_file_wins_over_the_environment(tmp_path: Path) -> None:
    """--password and --password-file win over LANCHAT_PASSWORD; an empty variable is no password."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-the-file\r\nsecond line, ignored\n", encoding="utf-8")
    environ = {"LANCHAT_PASSWORD": "from-env", "LANCHAT_OP_SECRET": "op-from-env"}
    assert parsed(["--password", "flag"], environ).password == "flag"
    from_file = parsed(["--password-file", str(secret_file)], environ)
    assert (from_file.password, from_file.password_from) == ("from-the-file", "--password-file")
    from_env = parsed([], environ)
    assert (from_env.password, from_env.op_secret, from_env.op_secret_from) == (
        "from-env",
        "op-from-env",
        "LANCHAT_OP_SECRET",
    )
    assert parsed([], {"LANCHAT_PASSWORD": ""}).password is None


def test_start_up_lines_never_show_a_chosen_secret() -> None:
    """The teacher lines name where the secrets came from, never the password or a secret from a file."""
    args = parsed([], {"LANCHAT_PASSWORD": "pw-secret", "LANCHAT_OP_SECRET": "op-secret"})
    text = "\n".join(teacher_lines(args))
    assert "pw-secret" not in text and "op-secret" not in text and "LANCHAT_OP_SECRET" in text


def test_secret_comparison_does_not_depend_on_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """secrets_match gives compare_digest inputs of one length (digests), whatever the secrets' lengths."""
    lengths: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        lengths.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", recording)
    assert access.secrets_match("short", "a-much-longer-secret") is False
    assert access.secrets_match("a-much-longer-secret", "a-much-longer-secret") is True
    assert access.secrets_match("\ud800", "x") is False  # a lone surrogate from JSON does not crash
    assert lengths and all(a == b == 32 for a, b in lengths)
