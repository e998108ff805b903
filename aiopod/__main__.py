"""``python -m aiopod``."""

from aiopod.cli import main

if __name__ == "__main__":
    main()
