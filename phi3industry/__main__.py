"""``python -m phi3industry``: the command-line interface."""

from phi3industry.cli import main

if __name__ == "__main__":
    main()
