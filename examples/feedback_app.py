"""A human-feedback app: review the model's predictions, save corrected labels with flordb.

Run the pipeline first (``make -C examples/pipeline``), then::

    flask --app examples/feedback_app.py run      # or: python examples/feedback_app.py

The page lists each document's prediction, its current reviewed label and a form to correct it.
A POST stores the label as a value of the ``topic`` feature by the reviewer (workflow
``review``) and ``flor.commit()`` makes each save durable, as its own run. ``/labels.json``
returns the reviewed labels with their provenance (who, when, which run).
"""

from __future__ import annotations

import html
import threading

from flask import Flask, jsonify, redirect, request

import flordb as flor
from flordb.lifecycle.features import FeatureError

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>flordb feedback</title></head>
<body><h1>Predictions to review</h1>
<table id="predictions"><tr><th>document</th><th>prediction</th><th>confidence</th>
<th>reviewed</th><th>correct it</th></tr>{rows}</table></body></html>"""
ROW = """<tr data-record="{rid}"><td>{rid}</td><td>{label}</td><td>{confidence:.2f}</td>
<td class="reviewed">{reviewed}</td><td><form method="post" action="/label">
<input type="hidden" name="record_id" value="{rid}">
<input name="annotator" placeholder="your name" required>
<select name="label"><option>sports</option><option>news</option></select>
<button type="submit">save</button></form></td></tr>"""


def create_app(limit: int = 50) -> Flask:
    """The app; ``limit`` is how many least-confident predictions the page lists."""
    app = Flask(__name__)
    saving = threading.Lock()  # one run per process at a time: one save, one commit
    @app.get("/")
    def index() -> str:
        predictions = flor.feature("prediction", record_type="doc").select("newest")
        reviewed = flor.feature("topic", record_type="doc").select(workflow="review")
        done = dict(zip(reviewed["record_id"], reviewed["value"]))
        shown = predictions.sort_values(["confidence", "record_id"]).head(limit)
        rows = "".join(ROW.format(rid=html.escape(r.record_id), label=html.escape(r.label),
                                  confidence=r.confidence,
                                  reviewed=html.escape(done.get(r.record_id, "")))
                       for r in shown.itertuples())
        return PAGE.format(rows=rows)

    @app.post("/label")
    def label():
        form = request.form
        if not form.get("record_id") or not form.get("annotator"):
            return "record_id and annotator are required", 400
        with saving:
            try:
                flor.feature("topic", record_type="doc").add(
                    form["record_id"], value=form.get("label", ""),
                    annotator=form["annotator"], workflow="review")
            except FeatureError as exc:
                return html.escape(str(exc)), 400
            finally:
                flor.commit()  # each save is durable on its own (a rejected one: empty)
        return redirect("/", code=303)

    @app.get("/labels.json")
    def labels():
        values = flor.feature("topic", record_type="doc").values()
        reviewed = values[values["workflow"] == "review"]
        return jsonify(reviewed[["record_id", "value", "annotator", "tstamp", "run_id"]]
                       .to_dict("records"))

    return app


if __name__ == "__main__":
    create_app().run(debug=False)
