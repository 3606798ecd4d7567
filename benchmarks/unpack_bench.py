"""Benchmark: ``nospy ls`` against unblob and unsquashfs on one realistic router image.

    python benchmarks/unpack_bench.py [--workdir DIR] [--runs N] [--skip-unblob] [--squashfs3]

Builds (once, cached in the work directory, never in git) a firmware image the way router vendors
ship them: a uImage with an LZMA kernel followed by an xz squashfs root filesystem made of Debian
armhf packages (about 2,000 files), 16-32 MB in all. Then times, in one run:

- ``nospy ls IMAGE --format json`` (every file listed and hashed),
- ``unblob -e /dev/shm/...`` extracting the same image (unblob from PyPI in its own venv, with the
  Debian tools it needs),
- ``unsquashfs -d /dev/shm/...`` writing the root filesystem alone,

and prints the times, the ratios and each tool's peak memory; the tools take turns in each of the
rounds (`--runs`), and the fastest of each tool counts. Targets: nospy at least 3x faster than
unblob, within 2x of unsquashfs, below 1 GiB. Needs root for apt-get (armhf packages, tools).

``--squashfs3`` also times both on the same root filesystem as a squashfs 3.1 image (zlib, with
fragments), written by the tests' writer (no Debian tool writes 3.x): nospy reads it in process,
unsquashfs in C. For information; the issue sets no target for it.
"""

from __future__ import annotations

import argparse
import compileall
import lzma
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = [
    "libc6", "libc-bin", "libgcc-s1", "libstdc++6", "busybox", "bash", "coreutils", "perl-base",
    "openssl", "libssl3", "dropbear-bin", "iproute2", "iptables", "libxtables12", "libmnl0",
    "libnftnl11", "curl", "libcurl4", "libnghttp2-14", "libpsl5", "libssh2-1", "zlib1g", "libzstd1",
    "liblzma5", "libbz2-1.0", "libcap2", "libselinux1", "libpcre2-8-0", "libtinfo6", "libncursesw6",
    "lighttpd", "libpcre3", "tcpdump", "libpcap0.8", "dnsmasq-base", "libgmp10", "libnettle8",
    "libhogweed6", "libidn2-0", "libunistring2", "libgnutls30", "libtasn1-6", "libp11-kit0",
    "libffi8", "sqlite3", "libsqlite3-0", "hostapd", "wpasupplicant",
    "libnl-3-200", "libnl-genl-3-200", "libnl-route-3-200", "ethtool", "kmod", "procps",
]  # fmt: skip
UNBLOB_DEBIAN_TOOLS = [
    "e2fsprogs", "lz4", "lziprecover", "lzop", "p7zip-full", "squashfs-tools", "unar", "zstd", "erofs-utils",
    "android-sdk-libsparse-utils", "partclone",
]  # fmt: skip
# unblob calls sasquatch (squashfs-tools' unsquashfs with vendor patches, not in Debian) for squashfs;
# on a standard little-endian xz squashfs Debian's unsquashfs does the same work, so a shim runs it.
SASQUATCH_SHIM = """#!/bin/sh
args=""
for a in "$@"; do case "$a" in -le|-be|-no-exit-code) ;; *) args="$args '$a'" ;; esac; done
eval exec unsquashfs $args
"""
SHM = Path("/dev/shm")


def sh(*args: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=cwd, stdout=subprocess.DEVNULL)


def apt_install(packages: list[str]) -> None:
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True, check=False).returncode]
    if missing:
        available = [
            p
            for p in missing
            if subprocess.run(["apt-cache", "show", p], capture_output=True, check=False).returncode == 0
        ]
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *available)


def rootfs(work: Path) -> Path:
    root = work / "rootfs"
    if root.is_dir():
        return root
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if (
        "armhf"
        not in subprocess.run(
            ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
        ).stdout
    ):
        sh("dpkg", "--add-architecture", "armhf")
        sh("apt-get", "update", "-qq")
    for pkg in PACKAGES:
        if not list(debs.glob(f"{pkg}_*.deb")):
            subprocess.run(
                ["apt-get", "download", "-qq", f"{pkg}:armhf"], cwd=debs, check=False, stderr=subprocess.DEVNULL
            )
    tmp = work / "rootfs.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        sh("dpkg-deb", "-x", deb, tmp)
    for d in ("etc/init.d", "tmp", "var/run", "proc", "sys", "dev"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nadmin:x:1000:1000::/home/admin:/bin/sh\n")
    (tmp / "etc" / "inittab").write_text("::sysinit:/etc/init.d/rcS\nttyS0::askfirst:-/bin/sh\n")
    (tmp / "etc" / "init.d" / "rcS").write_text(
        "#!/bin/sh\n/usr/sbin/dropbear -R\n/usr/sbin/lighttpd -f /etc/lighttpd/lighttpd.conf\n"
    )
    tmp.rename(root)
    return root


def firmware(work: Path) -> tuple[Path, Path]:
    image, squash = work / "firmware.bin", work / "rootfs.sqfs"
    if image.exists() and squash.exists():
        return image, squash
    root = rootfs(work)
    sh("mksquashfs", root, squash, "-comp", "xz", "-b", "256K", "-all-root", "-noappend", "-quiet")
    # the kernel: about 6 MB of real ARM machine code (the packages' shared objects), LZMA as U-Boot wants
    code = b"".join(p.read_bytes() for p in sorted(root.rglob("*.so*")) if p.is_file() and not p.is_symlink())[
        : 6 << 20
    ]
    packed = work / "kernel.lzma"
    packed.write_bytes(lzma.compress(code, format=lzma.FORMAT_ALONE, preset=6))
    uimage = work / "uImage"
    sh("mkimage", "-A", "arm", "-O", "linux", "-T", "kernel", "-C", "lzma", "-a", "0x80008000", "-e", "0x80008000",
       "-n", "Linux-6.1.0-armmp", "-d", packed, uimage)  # fmt: skip
    kernel = uimage.read_bytes()
    pad = b"\xff" * (-len(kernel) % 0x10000)  # the rootfs starts on an erase block, as in flash layouts
    image.write_bytes(kernel + pad + squash.read_bytes())
    return image, squash


def unblob_venv(work: Path) -> Path:
    venv = work / "unblob-venv"
    exe = venv / "bin" / "unblob"
    if not exe.exists():
        sh(sys.executable, "-m", "venv", venv)
        sh(venv / "bin" / "pip", "install", "-q", "unblob", "jefferson", "ubi-reader")
    shim = venv / "bin" / "sasquatch"
    shim.write_text(SASQUATCH_SHIM)
    shim.chmod(0o755)
    apt_install(UNBLOB_DEBIAN_TOOLS)
    return exe


def timed(args: list[str | Path], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak resident memory (KiB) of one run."""
    start = time.perf_counter()
    env = dict(os.environ, PATH=f"{Path(args[0]).parent}:{os.environ.get('PATH', '')}")
    # run in the work directory: unblob leaves its unblob.log there
    proc = subprocess.Popen(
        [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[0]} failed with {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def best(
    tools: dict[str, tuple[list[str | Path], Path | None]], runs: int, cwd: Path
) -> dict[str, tuple[float, float, int]]:
    """Each tool's fastest wall and CPU time and its largest peak memory over ``runs`` rounds; ``tools``:
    name -> (command, output folder to empty before and after each run).

    The tools take turns within each round: the machine's speed drifts (it is shared, and its clock
    varies), and a tool run only at a slow moment or only at a fast one would skew the ratios.
    """
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in tools}
    for _ in range(runs):
        for name, (args, cleanup) in tools.items():
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)
            results[name].append(timed(args, cwd))
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)
    return {
        name: (min(r[0] for r in got), min(r[1] for r in got), max(r[2] for r in got)) for name, got in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nospy" / "unpack-bench"
    parser.add_argument("--workdir", type=Path, default=cache, help=f"cache of packages and images (default {cache})")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool; the fastest counts")
    parser.add_argument(
        "--skip-unblob", action="store_true", help="time nospy and unsquashfs only (unblob is slow to install and run)"
    )
    parser.add_argument("--squashfs3", action="store_true", help="also time both on a squashfs 3.1 (zlib) image")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)

    image, squash = firmware(work)
    # nospy as pip installs it, byte-compiled: an editable install's sources are compiled on every
    # run where PYTHONDONTWRITEBYTECODE is set, 0.2 s that no installed copy pays (dev.sh does this too)
    import nospy  # noqa: PLC0415 - only to find the package

    compileall.compile_dir(Path(nospy.__file__).parent, quiet=1)
    unblob = None if args.skip_unblob else unblob_venv(work)
    nospy = Path(sys.executable).parent / "nospy"
    files = sum(1 for _ in rootfs(work).rglob("*"))
    print(f"image: {image} ({image.stat().st_size / 2**20:.1f} MiB, rootfs {files} entries, squashfs xz)")

    out_unblob = SHM / "nospy-bench-unblob"
    out_sq = SHM / "nospy-bench-unsquashfs"
    tools: dict[str, tuple[list[str | Path], Path | None]] = {
        "nospy": ([nospy, "ls", image, "--format", "json"], None),
        "unsquashfs": (["unsquashfs", "-q", "-d", out_sq, squash], out_sq),
    }
    if unblob is not None:
        tools["unblob"] = ([unblob, "-e", out_unblob, image], out_unblob)
    timings = best(tools, args.runs, work)
    # before this process reads the image itself: a child forked from a large process counts its pages
    old = squashfs3(work, nospy, args.runs) if args.squashfs3 else []
    t_nospy, c_nospy, m_nospy = timings["nospy"]
    t_sq, c_sq, m_sq = timings["unsquashfs"]
    if unblob is not None:
        t_unblob, c_unblob, m_unblob = timings["unblob"]

    # the same work in this process, without the interpreter's start and the CLI's imports
    from nospy.firmware.unpack import open_image  # noqa: PLC0415 - timed apart from the imports
    from nospy.firmware.unpack.listing import list_tree  # noqa: PLC0415

    inproc = []
    for _ in range(args.runs):
        start = time.perf_counter()
        tree = open_image(image)
        list_tree(tree, image, tree.root_chain).to_json()
        inproc.append(time.perf_counter() - start)
    t_inproc = min(inproc)

    load = os.getloadavg()[0]
    print(f"best of {args.runs} runs; load average {load:.1f} on {os.cpu_count()} cores (other work skews wall time)")
    print(f"{'tool':<34} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9}")
    print(f"{'nospy ls --format json':<34} {t_nospy:7.2f} {c_nospy:7.2f} {m_nospy / 1024:9.0f}")
    print(f"{'  of which open_image + listing':<34} {t_inproc:7.2f}")
    if unblob is not None:
        print(f"{'unblob -e /dev/shm':<34} {t_unblob:7.2f} {c_unblob:7.2f} {m_unblob / 1024:9.0f}")
    print(f"{'unsquashfs -d /dev/shm (rootfs)':<34} {t_sq:7.2f} {c_sq:7.2f} {m_sq / 1024:9.0f}")
    if unblob is not None:
        print(f"unblob / nospy     = {t_unblob / t_nospy:5.2f}x wall, {c_unblob / c_nospy:5.2f}x cpu  (target >= 3)")
    print(f"nospy / unsquashfs = {t_nospy / t_sq:5.2f}x wall, {c_nospy / c_sq:5.2f}x cpu  (target <= 2)")
    print(f"nospy peak memory  = {m_nospy / 1024:.0f} MiB (target < 1024)")
    print(f"unpacking alone / unsquashfs = {t_inproc / t_sq:5.2f}x wall (without interpreter start and CLI imports)")
    print("\n".join(old))


def squashfs3(work: Path, nospy: Path, runs: int) -> list[str]:
    image = work / "rootfs-3.1-gzip.sqfs"
    if not image.exists():  # written in a child process: its memory must not count in the timed runs' peak
        tests = Path(__file__).resolve().parent.parent / "tests"
        write = "import sys; from pathlib import Path; from unpack_images import OLD_SQUASHFS as W; "
        write += "W['squashfs3-gzip'](Path(sys.argv[1]), Path(sys.argv[2]))"
        subprocess.run([sys.executable, "-c", write, rootfs(work), image], cwd=tests, check=True)
    out = SHM / "nospy-bench-unsquashfs3"
    timings = best(
        {
            "nospy": ([nospy, "ls", image, "--format", "json"], None),
            "unsquashfs": (["unsquashfs", "-q", "-d", out, image], out),
        },
        runs,
        work,
    )
    (t_nospy, c_nospy, m_nospy), (t_sq, c_sq, m_sq) = timings["nospy"], timings["unsquashfs"]
    return [
        f"squashfs 3.1 (zlib, fragments): {image.stat().st_size / 2**20:.1f} MiB",
        f"{'nospy ls --format json':<34} {t_nospy:7.2f} {c_nospy:7.2f} {m_nospy / 1024:9.0f}",
        f"{'unsquashfs -d /dev/shm':<34} {t_sq:7.2f} {c_sq:7.2f} {m_sq / 1024:9.0f}",
        f"nospy / unsquashfs = {t_nospy / t_sq:5.2f}x wall, {c_nospy / c_sq:5.2f}x cpu  (no target)",
    ]


if __name__ == "__main__":
    main()
