"""`python -m modeling_asda.convert_checkpoint ...` runs the checkpoint converter, `modeling_asda.tools.convert_checkpoint`."""

from .tools.convert_checkpoint import convert_checkpoint, main


__all__ = ["convert_checkpoint", "main"]

if __name__ == "__main__":
    main()
