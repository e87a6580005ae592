from __future__ import annotations

from tests.reference import reference_examples, reference_records


def test_every_example_of_the_reference_page_is_loaded() -> None:
    examples = reference_examples()
    assert len(examples) == 22
    assert all(example.body["page_size"] in (25, 200) for example in examples)
    assert examples[0].title == "Opportunities Search"
    assert all(isinstance(record["id"], int) for record in reference_records())
