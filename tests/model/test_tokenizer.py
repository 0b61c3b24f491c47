from tcap_viz.model.tokenizer import IMAGE_TOKEN, SPECIAL_TOKENS


def test_any_utf8_text_round_trips_without_unknown_tokens(tiny_tokenizer):
    text = "Zürich naïve 東京 🙂 \t tabs\nand lines, ½ ∑ «quotes» Backdoor Attack!"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.unk_token_id is None or tiny_tokenizer.unk_token_id not in ids
    assert tiny_tokenizer.decode(ids) == text


def test_special_tokens_are_single_ids(tiny_tokenizer):
    for token in SPECIAL_TOKENS:
        assert len(tiny_tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    ids = tiny_tokenizer(IMAGE_TOKEN * 3, add_special_tokens=False)["input_ids"]
    assert ids == [tiny_tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)] * 3
