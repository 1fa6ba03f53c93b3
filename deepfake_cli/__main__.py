"""`python -m deepfake_cli` runs the `mattn` command line (also under torchrun's `-m`)."""

from deepfake_cli.commands import main

if __name__ == "__main__":
    main()
