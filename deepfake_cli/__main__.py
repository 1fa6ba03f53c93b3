"""`python -m deepfake_cli` runs the `mattn` command line."""

from deepfake_cli.cli import main

if __name__ == "__main__":
    main()
