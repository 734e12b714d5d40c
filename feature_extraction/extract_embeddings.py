#!/usr/bin/env python
"""ASDA embeddings of audio files, folders, manifests or a `datasets` dataset: `modeling_asda.tools.embeddings` run as a
script (installed, the same tool is the `asda-extract-embeddings` command). See feature_extraction/README.md."""

import sys

from modeling_asda.tools.embeddings import main


if __name__ == "__main__":
    sys.exit(main())
