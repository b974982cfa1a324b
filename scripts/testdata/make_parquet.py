"""Write internal/records/testdata/squad.parquet the way the Hub's parquet
conversion of rajpurkar/squad lays it out: id, title, context, question,
answers{text: list<string>, answer_start: list<int32>}.

Usage: python scripts/testdata/make_parquet.py internal/records/testdata
(pip install -r scripts/testdata/requirements.txt first).
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main(out_dir):
    # The same rows as squad.jsonl, less its deliberately malformed line.
    rows = []
    with open(os.path.join(out_dir, "squad.jsonl"), encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    schema = pa.schema([
        ("id", pa.string()),
        ("title", pa.string()),
        ("context", pa.string()),
        ("question", pa.string()),
        ("answers", pa.struct([
            ("text", pa.list_(pa.string())),
            ("answer_start", pa.list_(pa.int32())),
        ])),
    ])
    table = pa.Table.from_pylist(rows, schema=schema)
    # Two row groups, so readers that stop after the first one fail the test.
    pq.write_table(table, os.path.join(out_dir, "squad.parquet"), row_group_size=3, compression="snappy")


if __name__ == "__main__":
    main(sys.argv[1])
