"""``python -m hfdc`` (and ``accelerate launch -m hfdc``) runs the CLI."""

from hfdc.cli import main

if __name__ == "__main__":
    main()
