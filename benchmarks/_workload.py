"""One measured workload, run in a fresh process by the benchmark drivers.

    python _workload.py MODE N [NAMES]

MODE: ``bare`` (the loop alone), ``flordb`` (this flordb), ``upstream`` (flordb 4.0.1's
API, same calls), ``mlflow`` (``mlflow.log_metric`` into a local SQLite store),
``dataframe`` (time ``flor.dataframe`` of NAMES, comma-separated), ``inner`` (N values of
``x`` logged in a plain ``for`` under ``flor.loop("epoch", range(10))``: many values per loop
iteration). Prints one JSON line.
"""

import json
import resource
import sys
import time

mode, n = sys.argv[1], int(sys.argv[2])
out = {"mode": mode, "n": n}
if mode == "bare":
    t = time.perf_counter()
    x = 0.0
    for i in range(n):
        x = 0.5
    out["loop_s"] = time.perf_counter() - t
elif mode in ("flordb", "upstream"):
    t = time.perf_counter()
    import flordb as flor

    out["import_s"] = time.perf_counter() - t
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else ["x"]
    t = time.perf_counter()
    if len(names) == 1:
        for i in flor.loop("i", range(n)):
            flor.log("x", 0.5)
    else:
        for i in flor.loop("i", range(n)):
            for name in names:
                flor.log(name, 0.5)
    out["loop_s"] = time.perf_counter() - t
    t = time.perf_counter()
    flor.commit()
    out["exit_s"] = time.perf_counter() - t
elif mode == "inner":
    import flordb as flor

    t = time.perf_counter()
    for epoch in flor.loop("epoch", range(10)):
        for b in range(n // 10):
            flor.log("x", 0.5)
    out["loop_s"] = time.perf_counter() - t
    flor.commit()
elif mode == "mlflow":
    import mlflow

    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    with mlflow.start_run():
        t = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("x", 0.5, step=i)
        out["loop_s"] = time.perf_counter() - t
elif mode == "dataframe":
    import flordb as flor

    names = sys.argv[3].split(",")
    t = time.perf_counter()
    df = flor.dataframe(*names)
    out["dataframe_s"] = time.perf_counter() - t
    out["rows"] = len(df)
out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
