"""Where the demo-model tools find the project's files, the shared material and the pocket binary."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_file(rel):
    """A file of the shared material: $POCKET_SHARED, else ../shared beside the source tree."""
    bases = [os.environ["POCKET_SHARED"]] if os.environ.get("POCKET_SHARED") else []
    bases += [os.path.join(os.path.dirname(ROOT), "shared"), os.path.join(ROOT, "shared")]
    for base in bases:
        p = os.path.join(base, rel)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{rel} (looked in {', '.join(bases)}; set POCKET_SHARED)")


def default_pocket():
    """$POCKET_BIN, else build-demo/pocket or build/pocket in the source tree, else `pocket`."""
    if os.environ.get("POCKET_BIN"):
        return os.environ["POCKET_BIN"]
    for b in ("build-demo", "build"):
        p = os.path.join(ROOT, b, "pocket")
        if os.path.exists(p):
            return p
    return "pocket"
