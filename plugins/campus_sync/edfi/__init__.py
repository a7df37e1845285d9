"""Ed-Fi: the resource model (model.py, read from include/edfi/), document validation
(validate.py) and the local Ed-Fi API (api/)."""
