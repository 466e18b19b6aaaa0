"""Peak memory of a piece of work, measured in a fresh Python process.

The child reports its own high-water mark (VmHWM of /proc/self/status: it starts again at exec),
not getrusage's ru_maxrss, which Linux carries over from the parent across fork and exec.
"""

from __future__ import annotations

import subprocess
import sys

_PEAK = """
def _peak_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1])
    raise RuntimeError('no VmHWM in /proc/self/status')
"""


def run_and_measure(code: str, *args: str) -> tuple[str, float]:
    """Run `code` (which may print) in a fresh interpreter with `args` as sys.argv[1:]; returns its
    output and its peak resident memory in MiB. Fails loudly if the child fails."""
    script = _PEAK + code + "\nprint('\\n@peak', _peak_kib())\n"
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out, _, peak = p.stdout.rpartition("\n@peak ")
    return out.strip(), int(peak) / 1024
