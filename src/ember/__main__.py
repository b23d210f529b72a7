"""``python -m ember``: entry point (the ``demo`` command for now)."""

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m ember demo    # train a small network with ember's autograd")
        return 0
    if argv[0] == "demo":
        from .demo import main as demo

        demo()
        return 0
    print(f"ember: unknown command {argv[0]!r}; valid commands: demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
