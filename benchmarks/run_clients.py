"""Run the real FlorDB client code, unchanged, against this flordb: pass/fail per step.

The clients are the code FlorDB's paper and project point to, read from local mirrors of their
public repositories (bare git directories ``owner+name/repo``, as the session's ``fetch`` tool
leaves them): FlorDB's README (``ucbrise/flor``), its tutorial (``rlnsanz/ml_tutorial``), the
paper's PDF-parser demo (``ucbepic/pdf_parser``) and its successor
(``rlnsanz/document_parser``). Each is cloned into a temporary directory and its steps run in
the order of its Makefile / README, each in a fresh process.

Nothing in the clients is edited except what their own README tells the user to edit (the
tutorial's ``gradient_norm`` statement). Offline stand-ins replace downloads only:

- MNIST for the tutorial: a small synthetic data set in MNIST's file format in ``../data``
  (16,032 training images, so the tutorial's ``print_every=500`` logs once per epoch);
- ResNet-18's ImageNet weights for the PDF parsers: random weights in ``TORCH_HOME``'s cache;
- the web app's browser: Flask's test client sends the requests the pages send.

Steps that check values compare with a from-scratch run (the replayed ``gradient_norm`` against
the patched tutorial re-run with each run's recorded arguments). Needs (besides flordb's own
dependencies): ``pip install torchvision flask pymupdf pytesseract scikit-learn python-doctr
wordfreq`` and the ``tesseract`` binary (``apt-get install tesseract-ocr``). torchvision's
PyPI wheels need PyPI's (CUDA) torch build, so give the clients a virtualenv of their own:

    python -m venv /tmp/clients && /tmp/clients/bin/pip install --isolated torch torchvision \
        flask pymupdf pytesseract scikit-learn python-doctr wordfreq -e .

Run: ``python benchmarks/run_clients.py [--python /tmp/clients/bin/python] [--mirrors DIR]
[--only NAME] [--keep] [-v]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass
class Step:
    """One step of a client: a shell command (``cmd``) or a check (``check``) run in ``cwd``."""

    name: str
    cmd: str | None = None
    check: Callable[[Client], str | None] | None = None  # returns a failure, or None
    stdin: str | None = None
    timeout: int = 900


@dataclass
class Client:
    """A cloned client repository and the environment its steps run in."""

    repo: str
    work: Path
    env: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # steps broken in the client itself

    @property
    def root(self) -> Path:
        return self.work / self.repo.split("/")[1]

    def run(self, cmd: str, stdin: str | None = None, timeout: int = 900,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        """``cmd`` through the shell, ``python`` being the clients' interpreter."""
        return subprocess.run(cmd, shell=True, cwd=cwd or self.root, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def python(self, code: str, timeout: int = 900) -> subprocess.CompletedProcess:
        """A snippet (a notebook cell, a driver) run with the clients' interpreter."""
        return self.run(f"python - <<'PYEOF'\n{textwrap.dedent(code)}\nPYEOF", timeout=timeout)


def clone(mirrors: Path, repo: str, work: Path, env: dict[str, str]) -> Client:
    """A working clone of ``repo``'s default branch, with a git identity for flordb."""
    src = mirrors / repo.replace("/", "+") / "repo"
    if not src.exists():
        raise FileNotFoundError(f"no mirror of {repo} at {src}")
    client = Client(repo, work, env)
    # A mirror may lack its largest blobs (images): check out every file it has.
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(src), str(client.root)],
                   check=True)
    listing = subprocess.run(["git", "ls-tree", "-r", "-z", "HEAD"], cwd=client.root,
                             capture_output=True, check=True).stdout.decode()
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        sha = meta.split()[2]
        blob = subprocess.run(["git", "cat-file", "blob", sha], cwd=client.root,
                              capture_output=True)
        if blob.returncode == 0:
            (client.root / path).parent.mkdir(parents=True, exist_ok=True)
            (client.root / path).write_bytes(blob.stdout)
    subprocess.run(["git", "reset", "-q"], cwd=client.root, check=True)
    for key, value in (("user.email", "client@example.com"), ("user.name", "client")):
        subprocess.run(["git", "config", key, value], cwd=client.root, check=True)
    return client


def fake_mnist(root: Path, n_train: int = 16032, n_test: int = 2000) -> None:
    """MNIST's four files (idx format) with learnable synthetic digits: class ``k`` lights a
    class-specific set of pixels, plus noise."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    templates = rng.random((10, 28, 28)) > 0.7
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        noise = rng.integers(0, 90, (n, 28, 28))
        images = np.clip(templates[labels] * 200 + noise, 0, 255).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([2051, n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([2049, n], ">i4").tobytes() + labels.tobytes())


RESNET_WEIGHTS = """
import os, torch
from pathlib import Path
from torchvision.models import ResNet18_Weights, resnet18
cache = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
cache.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
torch.save(resnet18().state_dict(), cache / Path(ResNet18_Weights.IMAGENET1K_V1.url).name)
"""


def frame_check(code: str, expect: Callable[[str], str | None]) -> Callable[[Client], str | None]:
    """A step that runs ``code`` (a notebook cell, a snippet from a README) and judges what it
    printed."""
    def check(client: Client) -> str | None:
        out = client.python(code)
        if out.returncode:
            return tail(out)
        return expect(out.stdout)
    return check


def tail(proc: subprocess.CompletedProcess, lines: int = 6) -> str:
    text = (proc.stderr or "") + (proc.stdout or "")
    return " | ".join(text.strip().splitlines()[-lines:]) or f"exit {proc.returncode}"


def notebook_cells(path: Path) -> list[str]:
    """The code cells of a notebook, in order."""
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def as_script(cells: list[str], k: int) -> str:
    """Cells ``0..k`` of a notebook as one script, as a kernel runs them: cell ``k``'s last
    expression printed, as Jupyter shows it."""
    lines = cells[k].rstrip().splitlines()
    last = lines[-1]
    if last and not last.startswith((" ", "\t")) and "=" not in last.split("(")[0] \
            and not last.startswith(("import", "from", "for", "with", "if")):
        lines[-1] = f"__value = {last}\nprint(repr(__value) if __value is None else __value)"
    return "\n".join([*cells[:k], *lines])


# --------------------------------------------------------------------------- the clients


def flor_readme(client: Client) -> None:
    """FlorDB's README: "Just start logging" in a fresh repository, then read it back."""
    readme = (client.root / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    start = next(b for b in blocks if 'flor.log("msg"' in b)
    read = next(b for b in blocks if 'flor.dataframe("msg")' in b)
    sandbox = client.work / "flor_sandbox"

    def just_start(c: Client) -> str | None:
        sandbox.mkdir()
        c.run("git init -q && git config user.email a@b && git config user.name a", cwd=sandbox)
        (sandbox / "start.py").write_text(start)
        out = c.run("python start.py", cwd=sandbox)
        if out.returncode:
            return tail(out)
        return None if "Hello world!" in out.stdout + out.stderr else "no echo of msg"

    def read_back(c: Client) -> str | None:
        (sandbox / "read.py").write_text(f"import flordb as flor\nprint({read.strip()})\n")
        out = c.run("python read.py", cwd=sandbox)
        return tail(out) if out.returncode or "Hello world!" not in out.stdout else None

    client.steps += [Step("just start logging", check=just_start),
                     Step("read it back with flor.dataframe", check=read_back)]


def ml_tutorial(client: Client) -> None:
    """The tutorial: two recorded runs, its notebooks' cells, then the README's hindsight
    logging of ``gradient_norm``, checked against from-scratch runs."""
    fake_mnist(client.work / "data")
    nb = notebook_cells(client.root / "notebook.ipynb")
    demo = notebook_cells(client.root / "Demo.ipynb")
    readme = (client.root / "README.md").read_text()

    def rows(n: int) -> Callable[[str], str | None]:
        return lambda out: None if len(re.findall(r"^\d+ ", out, re.M)) >= n else \
            f"expected {n} rows:\n{out[-400:]}"

    def add_gradient_norm(c: Client) -> str | None:
        # The README's statement, inserted where its README puts it: first in the epoch loop.
        stmt = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                    if b.startswith('flor.log("gradient_norm"'))
        script = (c.root / "train.py").read_text()
        head = '    for epoch in flor.loop("epoch", range(num_epochs)):\n'
        if head not in script:
            return "the tutorial's epoch loop moved"
        (c.root / "train.py").write_text(
            script.replace(head, head + textwrap.indent(stmt.strip(), " " * 8) + "\n"))
        return None

    def equal_to_scratch(c: Client) -> str | None:
        out = c.python("""
            import flordb as flor
            df = flor.dataframe("seed", "epochs", "batch_size", "lr", "gradient_norm")
            print(df[["tstamp", "seed", "epochs", "batch_size", "lr", "epoch",
                      "gradient_norm"]].to_json(orient="records"))
        """)
        if out.returncode:
            return tail(out)
        replayed = json.loads(out.stdout.strip().splitlines()[-1])
        runs = {}
        for row in replayed:
            runs.setdefault(row["tstamp"], []).append(row)
        if len(runs) != 2:
            return f"gradient_norm for {len(runs)} runs, expected 2"
        for rows_ in runs.values():
            r = rows_[0]
            scratch = c.work / f"scratch_{r['seed']}"
            shutil.copytree(c.root, scratch, ignore=shutil.ignore_patterns(".flor"))
            args = f"seed={r['seed']} epochs={r['epochs']} batch_size={r['batch_size']} " \
                   f"lr={r['lr']}"
            ran = c.run(f"python train.py --kwargs {args}", cwd=scratch)
            if ran.returncode:
                return tail(ran)
            got = c.run("python -c 'import flordb as flor; print(flor.dataframe(\"gradient_norm\")"
                        ".to_json(orient=\"records\"))'", cwd=scratch)
            want = [row["gradient_norm"] for row in json.loads(got.stdout.strip())]
            have = [row["gradient_norm"] for row in sorted(rows_, key=lambda x: x["epoch"])]
            if len(want) != len(have) or not np.allclose(have, want, rtol=1e-5, atol=1e-7):
                return f"seed {r['seed']}: replayed {have} != from scratch {want}"
            if not all(h > 0 for h in have[1:]):  # epoch 1 has no gradients yet: 0.0
                return f"seed {r['seed']}: a later epoch's gradient norm is 0: {have}"
        return None

    client.steps += [
        Step("record: python train.py", "python train.py"),
        Step("record: python train.py --kwargs epochs=3 batch_size=64 lr=0.0005",
             "python train.py --kwargs epochs=3 batch_size=64 lr=0.0005"),
        Step("notebook: flor.dataframe(device, seed, epochs, batch_size, lr, accuracy)",
             check=frame_check(as_script(nb, 0), rows(2))),
        Step("notebook: flor.query('SELECT * FROM loops')",
             check=frame_check(as_script(nb, 1), rows(2))),
        Step("notebook: flor.pivot('accuracy', 'loss')",
             check=frame_check(as_script(nb, 2), rows(2))),
        Step("Demo: flor.utils.latest(flor.dataframe(seed, lr, loss, accuracy, device))",
             check=frame_check(as_script(demo, 0), rows(1))),
        Step("Demo: flor.dataframe()", check=frame_check(as_script(demo, 1), rows(2))),
        # (Demo's later cells read a ``df`` no cell assigns: they fail in any kernel.)
        Step("Demo: flor.dataframe('seed', 'lr', 'loss')",
             check=frame_check(as_script(demo, 2), rows(2))),
        Step("README: add the gradient_norm statement to the epoch loop",
             check=add_gradient_norm),
        Step("README: echo y | python -m flordb replay gradient_norm",
             "python -m flordb replay gradient_norm", stdin="y\n"),
        Step("replayed gradient_norm equals a from-scratch run, every epoch of every run",
             check=equal_to_scratch),
    ]


FLASK_DRIVER = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from app import app
client = app.test_client()
doc = sorted(f for f in os.listdir(PDF_DIR) if f.endswith(".pdf"))[0]
pages = []

def metadata():
    # The labelling page asks for every page's metadata, then posts it back with the colours.
    for i in range(len(COLORS)):
        response = client.get(f"/metadata-for-page/{i}")
        if response.status_code != 200:
            return response
        data = {k: v for item in response.get_json() for k, v in item.items()}
        pages.append({"page": i + 1, "data": data})
    return response

for route, call in [
        ("/", lambda: client.get("/")),
        ("/view-pdf", lambda: client.get("/view-pdf", query_string={"name": doc})),
        ("/metadata-for-page (every page)", metadata),
        ("/save_colors", lambda: client.post("/save_colors",
                                             json={"colors": COLORS, "metadata": pages})),
        ("/view-pdf again", lambda: client.get("/view-pdf", query_string={"name": doc}))]:
    try:
        response = call()
        print(json.dumps([route, response.status_code, response.get_data(as_text=True)[:300]]))
    except Exception as exc:
        print(json.dumps([route, 0, f"{type(exc).__name__}: {exc}"]))
"""

ROUTES = ["/", "/view-pdf", "/metadata-for-page (every page)", "/save_colors", "/view-pdf again"]


def flask_routes(client: Client, pdf_dir: str, pages: int, routes: list[str]) -> None:
    """The web app's routes, driven as its pages drive them, each route one step."""
    results: dict[str, tuple[int, str]] = {}

    def drive(c: Client) -> str | None:
        colors = [i // 3 % 2 for i in range(pages)]
        out = c.python(f"PDF_DIR = {pdf_dir!r}\nCOLORS = {colors!r}\n" + FLASK_DRIVER)
        for line in out.stdout.splitlines():
            if line.startswith("["):
                route, status, body = json.loads(line)
                results[route] = (status, body)
        return None if results else tail(out)

    def route_ok(route: str) -> Callable[[Client], str | None]:
        def check(c: Client) -> str | None:
            if not results and (failure := drive(c)):
                return failure
            status, body = results.get(route, (0, "not reached"))
            return None if status == 200 else f"HTTP {status}: {body}"
        return check

    client.steps += [Step(f"app: {route}", check=route_ok(route)) for route in routes]


def page_count(client: Client, pdf: Path) -> int:
    out = client.python(f"import fitz\nprint(fitz.open({str(pdf)!r}).page_count)")
    return int(out.stdout.strip())


def pdf_parser(client: Client) -> None:
    """The paper's demo, through its Makefile's targets in DAG order."""
    client.python(RESNET_WEIGHTS)
    pages = page_count(client, client.root / "public" / "Presidential_Immunity.pdf")
    client.steps += [
        Step("make pdf_links", "make pdf_links"),
        Step("make process_pdfs (pdf_demux.py: PyMuPDF + tesseract)", "make process_pdfs"),
        Step("make featurize (featurize.py: the feature store)", "make featurize"),
        Step("make hand_label (label_by_hand.py)", "make hand_label"),
        Step("train.py (make train; --kwargs num_epochs=3)",
             "python train.py --kwargs num_epochs=3"),
        Step("make model.pth (export_ckpt.py: the model registry opens the checkpoint file)",
             "make model.pth"),
        Step("make infer (infer.py)", "make infer"),
    ]
    flask_routes(client, "app/static/private/pdfs", pages, ROUTES)
    client.steps.append(Step("split.py (make apply_split, after the feedback)",
                             "python split.py"))


def document_parser(client: Client, pdf: Path) -> None:
    """The successor: its Makefile's targets that work at this commit (LayoutLMv3 training
    left out: it needs a pretrained model from the hub), with the demo's PDF as its
    document."""
    private = client.root / "private"
    private.mkdir()
    shutil.copy(pdf, private / pdf.name)
    client.steps += [
        Step("make app/static/private (link the documents)", "make app/static/private"),
        Step("doc_demux.py (make process_all)", "python doc_demux.py"),
        Step("label_by_hand.py (make first_pages)", "python label_by_hand.py"),
    ]
    flask_routes(client, "app/static/private", page_count(client, pdf), ROUTES)
    # Not run, each broken in the client at this commit whatever FlorDB it runs with:
    client.skipped += [
        "train/first_page_clf.py (make train_fp): its dataset reads a page_path column that"
        " its flor.dataframe(page_color, first_page) does not ask for",
        "export_ckpt.py (make model.pth): needs that training's runs",
        "infer/infer_firstpage.py: imports IMGS_DIR, which app does not define",
        "split.py (make apply_split): imports PDF_DIR, which app.constants does not define"]


# --------------------------------------------------------------------------- driver


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    ap.add_argument("--only", help="run only the client whose repository contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("-v", action="store_true", help="print each failing step's output")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter the clients run with (a virtualenv with flordb and the"
                         " clients' dependencies; default: this one)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flordb-clients-"))
    env = dict(os.environ, FLORDB_HOME=str(work / "home"), TORCH_HOME=str(work / "torch"),
               PATH=f"{Path(args.python).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(HERE.parent), FLORDB_ECHO="1", TQDM_DISABLE="1")
    env.pop("FLORDB_ROOT", None)
    wanted = [("ucbrise/flor", flor_readme), ("rlnsanz/ml_tutorial", ml_tutorial),
              ("ucbepic/pdf_parser", pdf_parser), ("rlnsanz/document_parser", None)]
    passed = total = 0
    try:
        for repo, build in wanted:
            if args.only and args.only not in repo:
                continue
            client = clone(args.mirrors, repo, work / repo.replace("/", "+"), env)
            if build is None:
                pdf = args.mirrors / "ucbepic+pdf_parser" / "repo"
                pdf_copy = work / "Presidential_Immunity.pdf"
                pdf_copy.write_bytes(subprocess.run(
                    ["git", "--git-dir", str(pdf), "show",
                     "HEAD:public/Presidential_Immunity.pdf"],
                    capture_output=True, check=True).stdout)
                document_parser(client, pdf_copy)
            else:
                build(client)
            print(f"\n{repo}")
            for step in client.steps:
                t0 = time.perf_counter()
                try:
                    if step.cmd is not None:
                        proc = client.run(step.cmd, stdin=step.stdin, timeout=step.timeout)
                        failure = tail(proc) if proc.returncode else None
                    else:
                        assert step.check is not None
                        failure = step.check(client)
                except Exception as exc:  # a step's own failure: report it, go on
                    failure = f"{type(exc).__name__}: {exc}"
                total += 1
                passed += failure is None
                mark = "pass" if failure is None else "FAIL"
                print(f"  {mark}  {step.name}  ({time.perf_counter() - t0:.1f}s)")
                if failure and args.v:
                    print(textwrap.indent(failure.replace(" | ", "\n"), "        "))
                sys.stdout.flush()
            for reason in client.skipped:
                print(f"  n/a   {reason}")
        print(f"\n{passed}/{total} client steps pass")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
