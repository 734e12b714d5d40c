#!/usr/bin/env python
"""Classify audio files window by window: `modeling_asda.tools.classify` run as a script (installed, the same tool is the
`asda-classify` command). See docs/inference.md."""

import sys

from modeling_asda.tools.classify import main


if __name__ == "__main__":
    sys.exit(main())
