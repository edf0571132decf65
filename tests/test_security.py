"""Our download path never goes through the pinned requests / urllib3 stack (docs/security.md)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

from test_fetch import serve

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["requests"] = None  # any import of them now raises ImportError
    sys.modules["urllib3"] = None
    from pathlib import Path
    from robustbench_face.assets import resolve
    from robustbench_face.fetch import download
    dest = Path(sys.argv[2])
    download(sys.argv[1] + "/a.bin", dest / "a.bin", sys.argv[3], progress=False)
    resolve("b.bin", sys.argv[3], sys.argv[1] + "/a.bin")
    print("requests" in sys.modules and sys.modules["requests"] is not None)
""")


def test_downloads_do_not_use_requests(tmp_path):
    data = b"weights" * 1000
    srv = serve({"a.bin": data})
    env = {"RBF_HOME": str(tmp_path / "home"), "RBF_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-c", SCRIPT, srv.url, str(tmp_path), hashlib.sha256(data).hexdigest()],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"
    assert (tmp_path / "cache" / "weights" / "b.bin").read_bytes() == data
