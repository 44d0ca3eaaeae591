"""Independent readers and writers for riffle's connector tests: pyarrow (Parquet, ORC, CSV,
JSON) and fastavro (Avro), none of them riffle's code.

    formats.py read FORMAT PATH    prints the file's rows as JSON: [id, score, name, ts, amount]
                                   with ts in microseconds since the epoch and amount a string
    formats.py write FORMAT PATH N writes rows 0..N of the test data (tests/common/mod.rs)
"""
import datetime
import decimal
import json
import sys

import pyarrow as pa

TS0 = 1_780_000_000_000_000
EPOCH = datetime.datetime(1970, 1, 1)
COLUMNS = ["id", "score", "name", "ts", "amount"]


def name(i):
    return {2: None, 3: f'a,"b" {i}', 4: f"héllo wörld {i}"}.get(i % 5, f"name-{i}")


def rows(n):
    for i in range(n):
        yield [
            i,
            None if i % 4 == 1 else i * 1.5 - 0.25,
            name(i),
            None if i % 6 == 3 else TS0 + i * 1_000_123,
            None if i % 7 == 4 else decimal.Decimal(i * 101 - 5).scaleb(-2),
        ]


def schema(decimal_column=True):
    fields = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("ts", pa.timestamp("us")),
    ]
    if decimal_column:
        fields.append(pa.field("amount", pa.decimal128(10, 2)))
    return pa.schema(fields)


def table(n, decimal_column=True):
    data = list(rows(n))
    cols = {c: [r[k] for r in data] for k, c in enumerate(COLUMNS)}
    cols["ts"] = [None if t is None else EPOCH + datetime.timedelta(microseconds=t) for t in cols["ts"]]
    if not decimal_column:
        del cols["amount"]
    return pa.table(cols, schema=schema(decimal_column))


def micros(v):
    if v is None:
        return None
    if v.tzinfo is not None:
        v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (v - EPOCH) // datetime.timedelta(microseconds=1)


def normalize(records):
    out = []
    for r in records:
        amount = r.get("amount")
        out.append([r["id"], r["score"], r["name"], micros(r["ts"]), None if amount is None else str(amount)])
    return out


def read(fmt, path):
    if fmt == "avro":
        import fastavro

        with open(path, "rb") as f:
            return normalize(list(fastavro.reader(f)))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path)
    elif fmt == "orc":
        import pyarrow.orc as orc

        t = orc.read_table(path)
    elif fmt == "csv":
        import pyarrow.csv as csv

        s = schema()
        t = csv.read_csv(
            path,
            read_options=csv.ReadOptions(column_names=s.names),
            convert_options=csv.ConvertOptions(column_types={f.name: f.type for f in s}, strings_can_be_null=True),
        )
    elif fmt == "json":
        import pyarrow.json as pj

        t = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema()))
    else:
        raise SystemExit(f"unknown format {fmt}")
    return normalize(t.to_pylist())


def write(fmt, path, n):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table(n), path, row_group_size=max(1, n // 4))
    elif fmt == "orc":
        import pyarrow.orc as orc

        orc.write_table(table(n, decimal_column=False), path, stripe_size=64 * 1024)
    elif fmt == "csv":
        import pyarrow.csv as csv

        csv.write_csv(table(n), path, write_options=csv.WriteOptions(include_header=False))
    elif fmt == "json":
        # pyarrow writes no JSON: Python's own encoder, one object per line.
        with open(path, "w", encoding="utf-8") as f:
            for i, score, nm, ts, amount in rows(n):
                ts_text = None if ts is None else (EPOCH + datetime.timedelta(microseconds=ts)).isoformat(sep=" ")
                obj = {"id": i, "score": score, "name": nm, "ts": ts_text, "amount": None if amount is None else str(amount)}
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    elif fmt == "avro":
        import fastavro

        avro_schema = {
            "type": "record",
            "name": "row",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "score", "type": ["null", "double"]},
                {"name": "name", "type": ["null", "string"]},
                {"name": "ts", "type": ["null", {"type": "long", "logicalType": "local-timestamp-micros"}]},
                {"name": "amount", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}]},
            ],
        }
        records = [
            {
                "id": i,
                "score": score,
                "name": nm,
                "ts": None if ts is None else EPOCH + datetime.timedelta(microseconds=ts),
                "amount": amount,
            }
            for i, score, nm, ts, amount in rows(n)
        ]
        with open(path, "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(avro_schema), records, codec="deflate", sync_interval=2000)
    else:
        raise SystemExit(f"unknown format {fmt}")


if __name__ == "__main__":
    if sys.argv[1] == "read":
        print(json.dumps(read(sys.argv[2], sys.argv[3])))
    else:
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]))
