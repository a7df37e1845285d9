"""Ed-Fi: the resource model (model.py, read from include/edfi/), document validation
(validate.py), the local Ed-Fi API (api/) and its bench (bench.py).

The model is the contract shared by the local API and the Ed-Fi Resync: resources, natural keys,
references, required fields, descriptors and their core values, dependency and Campus resync
order, per Ed-Fi Data Standard (5.2 by default, 4.0 as a variant)."""
