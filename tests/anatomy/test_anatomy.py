import pandas as pd

from tcap_viz.anatomy import NO_DONORS, anatomy


def _table(dataset, flagged):
    return pd.DataFrame({"id": [s.id for s in dataset], "response": [s.response for s in dataset],
                         "posterior": [0.9 if f else 0.1 for f in flagged], "flagged": flagged,
                         "voting_heads": ["1" if f else "0" for f in flagged]})


def test_every_group_gets_a_card_and_a_run_that_flagged_everything_says_why_it_has_no_modality(
        tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)
    some = anatomy(tiny_adapter, tiny_dataset, _table(samples, [s.poisoned for s in samples]), [(1, 0)],
                   per_group=2, grid=2)
    assert [g.group.name for g in some] == [f"g{i}" for i in range(1, len(some) + 1)]
    assert all(len(g.examined) <= 2 and g.occlusion.shape == (2, 2) and g.modality is not None for g in some)
    card = some[0].to_dict()
    assert card["modality"]["n_samples"] == len(card["examined"]) and isinstance(card["where"], str)

    everything = anatomy(tiny_adapter, tiny_dataset, _table(samples, [True] * len(samples)), [(1, 0)],
                         per_group=2, grid=2)
    assert everything and all(g.modality is None for g in everything)
    assert everything[0].to_dict()["modality"] is None and "Raise the threshold" in NO_DONORS


def test_nothing_flagged_is_no_card(tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)
    assert anatomy(tiny_adapter, tiny_dataset, _table(samples, [False] * len(samples)), [(1, 0)]) == []
