"""churn-pipeline: from customer transactions and feedback to a budgeted, measurable retention list."""

__version__ = "0.1.0"
