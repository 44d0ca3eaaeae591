"""Reads a directory a riffle file sink wrote, as an independent reader would.

usage: read_sink.py FORMAT DIR SCHEMA_JSON
       read_sink.py dataset FORMAT DIR PARTITION_COLUMNS_JSON

Visible files only (names starting with "." or "_" are skipped, as pyarrow.dataset, Spark and
Hive do); Hive partition directories (col=value, percent-escaped) become string columns.
SCHEMA_JSON lists the data columns in file order with pyarrow type names, for the text formats (CSV has no
header; JSON is read with that explicit schema). Prints JSON: {"files": n, "types": {column:
type as the file says}, "rows": [row dicts]}.
"""

import json
import os
import sys
import urllib.parse

import pyarrow as pa


def visible(root):
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith((".", "_")))
        for f in sorted(files):
            if not f.startswith((".", "_")):
                yield d, os.path.join(d, f)


def partition_values(root, d):
    rel = os.path.relpath(d, root)
    out = {}
    if rel != ".":
        for comp in rel.split(os.sep):
            k, v = comp.split("=", 1)
            out[urllib.parse.unquote(k)] = urllib.parse.unquote(v)
    return out


def read_file(fmt, path, schema):
    if fmt == "avro":
        import fastavro

        with open(path, "rb") as f:
            r = fastavro.reader(f)
            types = {fld["name"]: fld["type"] for fld in r.writer_schema["fields"]}
            return types, list(r)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path)
    elif fmt == "orc":
        import pyarrow.orc as orc

        t = orc.read_table(path)
    elif fmt == "csv":
        import pyarrow.csv as csv

        t = csv.read_csv(
            path,
            read_options=csv.ReadOptions(column_names=list(schema)),
            convert_options=csv.ConvertOptions(column_types=schema, strings_can_be_null=True),
        )
    elif fmt == "json":
        import pyarrow.json as pj

        t = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=pa.schema(schema)))
    else:
        raise SystemExit(f"unknown format {fmt}")
    return {f.name: str(f.type) for f in t.schema}, t.to_pylist()


def read_dataset(fmt, root, partition_columns):
    """pyarrow.dataset's own Hive partitioning: directory names unescaped by pyarrow, the
    default partition name read as null."""
    import pyarrow.dataset as ds

    part = ds.HivePartitioning(
        pa.schema([(c, pa.string()) for c in partition_columns]), null_fallback="__DEFAULT_PARTITION__"
    )
    d = ds.dataset(root, format=fmt, partitioning=part)
    t = d.to_table()
    return {"files": len(d.files), "types": {f.name: str(f.type) for f in t.schema}, "rows": t.to_pylist()}


def main():
    if sys.argv[1] == "dataset":
        print(json.dumps(read_dataset(sys.argv[2], sys.argv[3], json.loads(sys.argv[4])), default=str))
        return
    fmt, root, schema = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    schema = {k: pa.type_for_alias(v) for k, v in schema}
    files, types, rows = 0, {}, []
    for d, path in visible(root):
        files += 1
        t, recs = read_file(fmt, path, schema)
        types.update(t)
        extra = partition_values(root, d)
        rows.extend({**r, **extra} for r in recs)
    print(json.dumps({"files": files, "types": types, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
