"""`python -m cocoprep` runs the command line."""

from cocoprep.cli import main

if __name__ == "__main__":
    main()
