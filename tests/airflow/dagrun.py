"""Run by Airflow's own interpreter (``.venv-airflow/bin/python``), not by pytest: Airflow cannot be
imported next to eventlake's pins. Prints one JSON line.

    dagrun.py bag                                   the DagBag: import errors, DAGs, tasks, schedules
    dagrun.py test DAG_ID LOGICAL_DATE [CONF_JSON]  dag.test() against the metadata DB, the run's states
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Any

from airflow.dag_processing.dagbag import DagBag


def bag() -> dict[str, Any]:
    dags = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    return {
        "import_errors": {str(k): str(v) for k, v in dags.import_errors.items()},
        "dags": {
            d.dag_id: {
                "schedule": getattr(d.timetable, "expression", None),
                "catchup": d.catchup,
                "max_active_runs": d.max_active_runs,
                "params": sorted(d.params.keys()),
                "tasks": {
                    t.task_id: {
                        "downstream": sorted(t.downstream_task_ids),
                        "retries": t.retries,
                        "timeout_s": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                        "on_failure": [c.__name__ for c in (t.on_failure_callback or [])]
                        if isinstance(t.on_failure_callback, list)
                        else [t.on_failure_callback.__name__]
                        if t.on_failure_callback
                        else [],
                    }
                    for t in d.tasks
                },
            }
            for d in dags.dags.values()
        },
    }


def test(dag_id: str, logical_date: str, conf: dict[str, Any]) -> dict[str, Any]:
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    run = dag.test(logical_date=dt.datetime.fromisoformat(logical_date), run_conf=conf or None)
    return {"state": str(run.state), "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}


if __name__ == "__main__":
    if sys.argv[1] == "bag":
        result = bag()
    else:
        result = test(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
    print("DAGRUN " + json.dumps(result, default=str))
