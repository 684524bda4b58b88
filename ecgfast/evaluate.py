"""``python -m ecgfast.evaluate``: an alias of a command (the table: ecgfast.cli.ALIASES)."""
from ecgfast.cli import alias_main

main = alias_main(__spec__.name)
if __name__ == "__main__":
    raise SystemExit(main())
