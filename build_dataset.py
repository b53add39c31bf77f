"""Build the processed dataset: melt + dedup + template the competition CSVs into parquet.

    python build_dataset.py --data-dir data/sample --out data/processed
    python build_dataset.py --data-dir ../shared/data/jigsaw-agile-community-rules --out data/processed

Same as `jigsaw-kit build`; writes train.parquet, test.parquet, sample_submission.csv and
manifest.json (counts, template, source files and their hashes).
"""

import sys

from jigsaw_kit.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
