"""Run a command where the lessons' fixed ports are free, whatever else runs.

The notebooks start their servers on fixed ports (7890, as in the video), and a
student who runs ``make test`` with a JupyterLab open may hold that port in a
kernel. On Linux, this script runs the command in a private network namespace
(``unshare``; a user namespace too when not root): the command sees its own
loopback, where every port is free, and reaches no other network, so the tests
pass whatever listens on this machine's ports. Where ``unshare`` is missing or
not allowed (macOS, Windows, some containers), it checks the lessons' ports on
``127.0.0.1`` and ``::1`` instead: a busy one stops the run, before any test,
with one line that names it and says why it is needed.

Usage: ``python tools/private_network.py [--quiet] -- COMMAND [ARG...]``, or
``python tools/private_network.py --available``: exit status 0 when a private
namespace works here (``make test`` then runs its stages side by side), else 1.

``--quiet`` drops the line that says which of the two happened; the error line
stays. The command's exit status is this script's.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

__all__ = [
    "LESSON_PORT",
    "busy_ports",
    "lesson_ports",
    "loopback_up",
    "main",
    "nameservers",
    "namespace_problem",
    "own_user",
]

ROOT = Path(__file__).resolve().parents[1]
LESSON_PORT = 7890
# A port number written in a notebook's code: port=7890, PORT = 7890, localhost:7890.
PORT_IN_CODE = re.compile(
    r"(?:\bport\s*=\s*|localhost:|127\.0\.0\.1:|\[::1\]:)(\d{4,5})\b", re.IGNORECASE
)
INSIDE = "WSTEACH_PRIVATE_NETWORK"  # set in the command's environment, inside
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def lesson_ports(root: Path = ROOT) -> list[int]:
    """The fixed ports the solution notebooks' code uses, 7890 always among them."""
    ports = {LESSON_PORT}
    for path in sorted((root / "notebooks" / "solutions").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                ports.update(int(port) for port in PORT_IN_CODE.findall(source))
    return sorted(port for port in ports if 1024 <= port <= 65535)


def busy_ports(ports: list[int]) -> list[tuple[int, str]]:
    """The ``(port, host)`` pairs where another program listens already.

    Binds as servers do (``SO_REUSEADDR``), so connections closing on the port
    do not count. ``::1`` is skipped where this machine has no IPv6.
    """
    busy = []
    for port in ports:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                continue
            with sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError as error:
                    if error.errno == errno.EADDRINUSE:
                        busy.append((port, host))
    return busy


def loopback_up() -> None:
    """Bring up ``lo``, which a new network namespace starts without.

    Done with an ioctl, so that the ``ip`` command is not needed.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        (flags,) = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, request), 16)
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


# The namespace's stand-in for a classroom network: an interface with a private
# address and a default route, so that the code that finds "this machine's
# address on the network" (students' URLs) has one to find. A veth pair, since
# the "dummy" link type is not in every kernel.
LAN_COMMANDS = (
    ["link", "add", "lan0", "type", "veth", "peer", "name", "lan1"],
    ["link", "set", "lan1", "up"],
    ["addr", "add", "10.89.0.2/24", "dev", "lan0"],
    ["link", "set", "lan0", "up"],
    ["route", "add", "default", "via", "10.89.0.1", "dev", "lan0"],
    ["-6", "addr", "add", "fd89::2/64", "dev", "lan0", "nodad"],
    ["-6", "route", "add", "default", "via", "fd89::1", "dev", "lan0"],
)


def nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The DNS servers the resolver asks, loopback ones left out."""
    try:
        text = resolv_conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1].split("%", 1)[0]
            loopback = address.startswith("127.") or address == "::1"
            if not loopback and address not in found:
                found.append(address)
    return found


def unreachable_nameservers() -> list[list[str]]:
    """``ip`` arguments that make each DNS server unreachable inside.

    Through the stand-in LAN a name lookup would wait for a server that never
    answers (the resolver's timeout, 5 s and more); unreachable, it fails at
    once, as on a machine with no network.
    """
    commands = []
    for address in nameservers():
        if ":" in address:
            commands.append(["-6", "route", "add", "unreachable", f"{address}/128"])
        else:
            commands.append(["route", "add", "unreachable", f"{address}/32"])
    return commands


def lan_up() -> str | None:
    """Give the namespace a network interface besides loopback; None, or why not."""
    ip = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None
    )
    if ip is None:
        return "no ip command (iproute2)"
    for arguments in [*LAN_COMMANDS, *unreachable_nameservers()]:
        done = subprocess.run(
            [ip, *arguments], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return f"ip {' '.join(arguments)}: {done.stderr.strip()}"
    return None


def unshare_flags() -> list[str]:
    """``unshare`` options for a private network: a user namespace unless root."""
    return ["--net"] if os.geteuid() == 0 else ["--map-root-user", "--net"]


def namespace_problem() -> str | None:
    """None when a private network namespace works here, else why not.

    Tries it for real: ``unshare``, then loopback up and both loopback
    addresses bound inside.
    """
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "no unshare command"
    probe = "--probe6" if has_ipv6_loopback() else "--probe"
    command = [unshare, *unshare_flags(), "--", sys.executable, __file__, probe]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare failed: {error}"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no message"]
        return f"unshare failed: {lines[-1]}"
    return None


def has_ipv6_loopback() -> bool:
    """Whether this machine's ``::1`` can be bound, as the tests' servers do."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def probe(*, ipv6: bool) -> int:
    """Inside a new namespace: bring loopback up, bind ``127.0.0.1`` (and ``::1``)."""
    try:
        loopback_up()
        with socket.socket(socket.AF_INET) as sock:
            sock.bind(("127.0.0.1", LESSON_PORT))
        if ipv6:
            with socket.socket(socket.AF_INET6) as sock:
                sock.bind(("::1", LESSON_PORT))
    except OSError as error:
        print(f"loopback not usable in the namespace: {error}", file=sys.stderr)
        return 1
    return 0


def inside(command: list[str], uid: int, gid: int) -> None:
    """Inside the namespace: loopback and a stand-in LAN up, then run as ``uid``."""
    loopback_up()
    problem = lan_up()
    if problem is not None:
        print(
            f"private network: no stand-in LAN ({problem}): the tests of "
            "students' URLs will fail; install iproute2",
            file=sys.stderr,
        )
    os.environ[INSIDE] = "1"
    back, problem = own_user(uid, gid)
    if problem is not None:
        print(problem, file=sys.stderr, flush=True)
    os.execvp(back[0] if back else command[0], [*back, *command])


def own_user(uid: int, gid: int) -> tuple[list[str], str | None]:
    """The prefix that runs a command as ``uid`` again, and what to say if none does.

    Mapped to root by ``--map-root-user``, the command would run as root inside
    the namespace: a nested user namespace gives it its own user id back, so
    files and tools see the real user. Where that nested namespace isn't
    allowed, the command stays the mapped root, and the line says so (the
    files it writes still belong to ``uid`` outside).
    """
    if os.geteuid() == uid:
        return [], None
    back = ["unshare", "--user", f"--map-user={uid}", f"--map-group={gid}", "--"]
    try:
        works = subprocess.run([*back, "true"], capture_output=True, check=False)
    except OSError as error:
        reason = str(error)
    else:
        if works.returncode == 0:
            return back, None
        lines = works.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {works.returncode}"
    return [], (
        f"private network: the command runs as root mapped from user {uid}, "
        f"not as user {uid} ({' '.join(back[:4])}: {reason}); "
        "what it writes still belongs to you outside"
    )


def say(quiet: bool, line: str) -> None:
    """Print one line on stderr unless ``quiet``."""
    if not quiet:
        print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command as the module docstring says; return a status on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--available",
        action="store_true",
        help="exit 0 if a private network namespace works here, else 1; run nothing",
    )
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe6", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inside", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    if args.probe or args.probe6:
        return probe(ipv6=args.probe6)
    if args.available:
        return 0 if namespace_problem() is None else 1
    if not args.command:
        parser.error("no command to run: python tools/private_network.py -- COMMAND")
    if args.inside:
        inside(args.command, *args.inside)
    if os.environ.get(INSIDE) == "1":
        os.execvp(args.command[0], args.command)
    ports = lesson_ports()
    names = ", ".join(map(str, ports))
    problem = namespace_problem()
    if problem is None:
        say(
            args.quiet,
            f"lesson ports ({names}): tests run in a private network namespace "
            "(unshare), so servers already on this machine's ports do not matter",
        )
        this = [
            sys.executable,
            __file__,
            "--inside",
            str(os.geteuid()),
            str(os.getegid()),
        ]
        unshare = shutil.which("unshare") or "unshare"
        os.execv(unshare, [unshare, *unshare_flags(), "--", *this, "--", *args.command])
    busy = busy_ports(ports)
    if busy:
        port = busy[0][0]
        hosts = " and ".join(host for number, host in busy if number == port)
        print(
            f"port {port} is already in use on {hosts}, perhaps by a server in a "
            "notebook that is still open: the notebook tests start the lessons' "
            f"servers on it, and this machine gives the tests no private network "
            f"({problem}); stop that server (in JupyterLab: Kernel → Shut Down "
            "Kernel) or the program that holds the port, then run make test again",
            file=sys.stderr,
        )
        return 1
    say(
        args.quiet,
        f"lesson ports ({names}) are free: keep them free while the tests run "
        f"(no private network namespace here: {problem})",
    )
    os.execvp(args.command[0], args.command)
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main())
