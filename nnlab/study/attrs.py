"""The names of the user attributes the engine keeps on a study's trials.

key, config_id and seed when a run is enqueued; owner when it is claimed; result ({"status",
metrics, "seeds"}) or error when it ends, with the key metrics val_acc, test_acc, status and
seconds beside it as attributes of their own (what optuna-dashboard's trial table shows).
Few attributes: each is one fsync'ed journal write.
"""

KEY, CONFIG_ID, SEED, OWNER, RESULT, ERROR = (
    "key", "config_id", "seed", "owner", "result", "error")
IDENTITY = (KEY, CONFIG_ID, SEED)
KEY_METRICS = ("val_acc", "test_acc", "status", "seconds")
