"""Tasks of your own data: sources, columns found or named, labels inferred from the training split, and every
bad-label case refused with the file, the row and the fix — before any model is involved."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from transformers_fine_tuning.arguments import DataArguments
from transformers_fine_tuning.tasks import (
    GLUE_TASKS,
    CustomTask,
    check_task_source,
    load_custom_task,
    load_task_and_datasets,
    task_name_from_data,
    tokenize_dataset,
)

SENTIMENT = Path(__file__).parent / "data" / "sentiment"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


def load(tmp_path: Path, train: Path, validation: Path, **options) -> tuple[CustomTask, DatasetDict]:
    return load_custom_task(
        "mine", train_file=train, validation_file=validation, cache_dir=tmp_path / "cache", **options
    )


def test_three_class_csv_names_sorted_and_encoded(tmp_path: Path) -> None:
    task, data = load_custom_task(
        "sentiment",
        train_file=SENTIMENT / "train.csv",
        validation_file=SENTIMENT / "validation.csv",
        cache_dir=tmp_path,
    )
    assert task == CustomTask(
        name="sentiment",
        text_columns=("text",),
        label_names=("negative", "neutral", "positive"),
        is_regression=False,
        metric_names=("accuracy", "f1_macro"),
        main_metric="accuracy",
        eval_splits=("validation",),
    )
    assert task.kind == "custom" and task.num_labels == 3
    assert list(data) == ["train", "validation"] and data["train"].num_rows == 90
    assert data["train"].features == Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=["negative", "neutral", "positive"]),
            "idx": Value("int32"),
        }
    )
    first = data["train"][0]
    assert first == {"text": "i found the meal awful", "label": 0, "idx": 0}  # the file's first row
    assert sorted(data["validation"]["label"][:].count(k) for k in range(3)) == [15, 15, 15]


def test_integer_labels_are_classes_in_numeric_order(tmp_path: Path) -> None:
    rows = [{"text": t, "label": y} for t, y in [("a", 10), ("b", -1), ("c", 2), ("d", 10)]]
    train = jsonl(tmp_path / "train.jsonl", rows)
    dev = write(tmp_path / "dev.csv", "text,label\nx,2\ny,-1\n")  # a CSV's integers match the JSON's
    task, data = load(tmp_path, train, dev)
    assert task.label_names == ("-1", "2", "10") and task.metric_names == ("accuracy", "f1_macro")
    assert data["train"]["label"][:] == [2, 0, 1, 2] and data["validation"]["label"][:] == [1, 0]


def test_two_classes_get_accuracy_and_f1(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", 'text\tlabel\n"quoted\tno\nplain\tyes\n')  # TSV: quotes are text
    task, data = load(tmp_path, train, train)
    assert task.label_names == ("no", "yes") and task.metric_names == ("accuracy", "f1")
    assert data["train"]["text"][:] == ['"quoted', "plain"]


def test_floats_are_a_regression_target(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", [{"text": "a", "score": 0.5}, {"text": "b", "score": 2}])
    dev = jsonl(tmp_path / "dev.jsonl", [{"text": "c", "score": 1}, {"text": "d", "score": "1.5"}])
    task, data = load(tmp_path, train, dev, label_column="score")
    assert task.is_regression and task.num_labels == 1 and task.label_names == ()
    assert (task.metric_names, task.main_metric) == (("pearson", "spearmanr"), "pearson")
    assert data["train"].features["label"] == Value("float32")
    assert data["validation"]["label"][:] == [1.0, 1.5] and data["train"]["label"][:] == [0.5, 2.0]


def test_sentence_pairs_are_found_before_the_column_order(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "sentence2,id,sentence1,label\nb,1,a,x\nd,2,c,y\n")
    task, data = load(tmp_path, train, train)
    assert task.text_columns == ("sentence1", "sentence2")
    assert data["train"][0] == {"sentence1": "a", "sentence2": "b", "label": 0, "idx": 0}


def test_the_first_two_string_columns_besides_the_label_are_a_pair_and_said_so(tmp_path, caplog) -> None:
    train = write(tmp_path / "train.csv", "n,premise,label,hypothesis,note\n1,p,x,h,z\n2,q,y,i,w\n")
    with caplog.at_level(logging.WARNING, logger="transformers_fine_tuning.tasks.custom"):
        task, _ = load(tmp_path, train, train)
    assert task.text_columns == ("premise", "hypothesis")  # n is a number, label the label
    [record] = caplog.records
    assert "['premise', 'hypothesis']" in record.getMessage() and "--text_column" in record.getMessage()


def test_a_single_string_column_is_the_text_without_a_warning(tmp_path, caplog) -> None:
    train = write(tmp_path / "train.csv", "id,review,label\n1,good,1\n2,bad,0\n")
    with caplog.at_level(logging.WARNING, logger="transformers_fine_tuning.tasks.custom"):
        task, _ = load(tmp_path, train, train)
    assert task.text_columns == ("review",) and task.label_names == ("0", "1") and not caplog.records


def test_columns_named_by_flags(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "q,a,other,gold\nwhy,because,z,ok\nhow,so,z,bad\n")
    task, data = load(tmp_path, train, train, text_column="a", text_pair_column="q", label_column="gold")
    assert task.text_columns == ("a", "q") and task.label_names == ("bad", "ok")
    assert data["train"].column_names == ["a", "q", "label", "idx"]


def test_a_saved_dataset_dict_keeps_its_class_label_order(tmp_path: Path) -> None:
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["pos", "neg", "unused"])})
    rows = {"sentence": ["fine", "poor", "nice"], "label": [0, 1, 0]}
    saved = DatasetDict(
        {
            "train": Dataset.from_dict(rows, features=features),
            "test": Dataset.from_dict(rows, features=features),
        }
    )
    saved.save_to_disk(tmp_path / "saved")
    task, data = load_custom_task("mine", dataset_name=str(tmp_path / "saved"), validation_split_name="test")
    assert task.label_names == ("pos", "neg", "unused") and task.eval_splits == ("test",)
    assert list(data) == ["train", "test"] and data["test"]["label"][:] == [0, 1, 0]
    with pytest.raises(ValueError, match=r"has no 'validation' split; its splits are \['train', 'test'\]: "):
        load_custom_task("mine", dataset_name=str(tmp_path / "saved"))
    # one split of it, saved alone, is a training "file"; a CSV's names are matched against its ClassLabel
    saved["train"].save_to_disk(tmp_path / "train-only")
    dev = write(tmp_path / "dev.csv", "sentence,label\nok,neg\nbad,pos\n")
    task, data = load(tmp_path, tmp_path / "train-only", dev)
    assert task.label_names == ("pos", "neg", "unused") and data["validation"]["label"][:] == [1, 0]
    unseen = write(tmp_path / "unseen.csv", "sentence,label\nok,neg\nhm,unused\n")
    with pytest.raises(
        ValueError, match=r"row 2: label 'unused' does not occur in the training data .* pos, neg:"
    ):
        load(tmp_path, tmp_path / "train-only", unseen)
    with pytest.raises(
        ValueError, match=r"holds a DatasetDict \(splits \['train', 'test'\]\), not one split"
    ):
        load(tmp_path, tmp_path / "saved", tmp_path / "saved")
    with pytest.raises(ValueError, match=r"holds one Dataset .*: pass it as --train_file"):
        load_custom_task("mine", dataset_name=str(tmp_path / "train-only"))


def test_a_folder_of_data_files_is_a_dataset_name(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder / "train.csv", (SENTIMENT / "train.csv").read_text())
    write(folder / "validation.csv", (SENTIMENT / "validation.csv").read_text())
    task, data = load_custom_task("mine", dataset_name=str(folder), cache_dir=tmp_path / "cache")
    assert task.label_names == ("negative", "neutral", "positive")
    assert (data["train"].num_rows, data["validation"].num_rows) == (90, 45)


def _at(path: Path) -> str:
    return re.escape(str(path))


@pytest.mark.parametrize(
    ("train", "dev", "message"),
    [
        (  # a validation label the training split lacks
            "text,label\na,pos\nb,neg\n",
            "text,label\nc,pos\nd,meh\n",
            r"{dev}, row 2: label 'meh' does not occur in the training data \({train}\), whose labels are neg, "
            r"pos: add training examples of it, or drop the rows that have it",
        ),
        (  # one class only
            "text,label\na,pos\nb,pos\n",
            "text,label\nc,pos\n",
            r"{train}: every training label is 'pos' \(2 rows\): a classifier needs examples of at least two "
            r"classes; add training examples of the others",
        ),
        (  # names and numbers in one column (read as text by the CSV reader)
            "text,label\na,pos\nb,neg\nc,1\n",
            "text,label\nc,pos\n",
            r"{train}, row 3: label '1' is a number, but row 1's label 'pos' is a name: the label column 'label' "
            r"mixes kinds. Write every label as a name",
        ),
        (  # an empty label
            "text,label\na,pos\nb,\n",
            "text,label\nc,pos\n",
            r"{train}, row 2: the label is empty: every training and validation row needs one",
        ),
        (  # a name where the training labels are scores
            "text,label\na,0.5\nb,1.5\n",
            "text,label\nc,high\n",
            r"{dev}, row 1: expected a float target as label \(the training labels are regression targets\)",
        ),
        (  # one score only
            "text,label\na,0.5\nb,0.5\n",
            "text,label\nc,0.5\n",
            r"{train}: every training target is 0.5 \(2 rows\): regression needs targets that vary",
        ),
        (  # no label column
            "text,sentiment\na,pos\n",
            "text,sentiment\nc,pos\n",
            r"{train}: no label column 'label'; its columns are \['text', 'sentiment'\]: name the label column "
            r"with --label_column",
        ),
        (  # an empty text
            "text,label\na,pos\n,neg\n",
            "text,label\nc,pos\n",
            r"{train}, row 2: column 'text' is empty",
        ),
    ],
)
def test_bad_labels_and_columns_name_the_file_row_and_fix(tmp_path, train, dev, message) -> None:
    train_path, dev_path = write(tmp_path / "train.csv", train), write(tmp_path / "dev.csv", dev)
    with pytest.raises(ValueError, match=message.format(train=_at(train_path), dev=_at(dev_path))):
        load(tmp_path, train_path, dev_path)


def test_a_json_column_mixing_numbers_and_names_is_refused(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "two"}])
    with pytest.raises(ValueError, match=rf"{_at(train)}, row 2: label 'two' is a name, but row 1's label 1"):
        load(tmp_path, train, train)
    lists = jsonl(tmp_path / "lists.jsonl", [{"text": "a", "label": [1, 2]}, {"text": "b", "label": [0]}])
    with pytest.raises(ValueError, match=r"row 1: label \[1, 2\] is a list; a label is a name, an integer"):
        load(tmp_path, lists, lists)


def test_a_class_label_unseen_in_training_is_refused(tmp_path: Path) -> None:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["a", "b", "c"])})
    DatasetDict(
        {
            "train": Dataset.from_dict({"text": ["x", "y"], "label": [0, 1]}, features=features),
            "validation": Dataset.from_dict({"text": ["z"], "label": [2]}, features=features),
        }
    ).save_to_disk(tmp_path / "saved")
    with pytest.raises(
        ValueError, match=r"split 'validation', row 1: label 2 does not occur in the training data"
    ):
        load_custom_task("mine", dataset_name=str(tmp_path / "saved"))


def test_text_columns_must_hold_text_and_not_clash(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "text,n,label\na,1,x\nb,2,y\n")
    with pytest.raises(ValueError, match=r"text column 'n' holds int64 values, not text"):
        load(tmp_path, train, train, text_column="n")
    with pytest.raises(ValueError, match=r"not the label column 'label', nor named 'label' or 'idx'"):
        load(tmp_path, train, train, text_column="text", text_pair_column="label")
    # a string column named label, when the label is another column: never a text, found or named
    stars = write(tmp_path / "stars.csv", "text,label,stars\na,old,1\nb,new,2\n")
    task, data = load(tmp_path, stars, stars, label_column="stars")
    assert task.text_columns == ("text",) and data["train"]["label"][:] == [0, 1]
    with pytest.raises(ValueError, match=r"not the label column 'stars', nor named 'label' or 'idx'"):
        load(tmp_path, stars, stars, label_column="stars", text_column="label")
    with pytest.raises(ValueError, match=r"--text_pair_column names the second text of a pair"):
        load(tmp_path, train, train, text_pair_column="text")


def test_one_source_at_a_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"from one source, dataset_name .*; both given"):
        load_custom_task("mine", dataset_name="x", train_file=SENTIMENT / "train.csv")
    with pytest.raises(ValueError, match=r"from one source, dataset_name .*; neither given"):
        load_custom_task("mine")
    with pytest.raises(ValueError, match=r"pass both --train_file and --validation_file"):
        load_custom_task("mine", train_file=SENTIMENT / "train.csv")
    with pytest.raises(FileNotFoundError, match=r"data file .*nope.csv does not exist"):
        load(tmp_path, tmp_path / "nope.csv", SENTIMENT / "validation.csv")


def test_a_hub_data_set_offline_and_not_cached_is_a_connection_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError, match=r"someone/not-cached"):
        load_custom_task("mine", dataset_name="someone/not-cached", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"dataset_name": "stanfordnlp/imdb"}, "imdb"),
        (
            {"dataset_name": "cardiffnlp/tweet_eval", "dataset_config_name": "sentiment"},
            "tweet_eval-sentiment",
        ),
        ({"dataset_name": "data/reviews/"}, "reviews"),
        ({"train_file": "data/sentiment_train.csv"}, "sentiment"),
        ({"train_file": "data/reviews/train.jsonl"}, "reviews"),
        ({"train_file": "corpora/RTE/train.csv"}, "RTE-custom"),  # names the user's data, not GLUE's RTE
    ],
)
def test_a_task_of_your_own_data_is_named_from_it(options, name) -> None:
    assert task_name_from_data(**options) == name


def test_data_arguments_resolve_the_task_name() -> None:
    assert DataArguments().task_name == "rte"  # the reference run
    assert DataArguments(data_dir="glue").task_name == "rte"
    assert DataArguments(train_file="x/sentiment-train.csv", validation_file="v.csv").task_name == "sentiment"
    assert DataArguments(task_name="mine", dataset_name="org/set").task_name == "mine"
    assert DataArguments(extra_metrics=" matthews_correlation, f1 ").extra_metric_names == (
        "matthews_correlation",
        "f1",
    )
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['auc'\]; the metrics are accuracy, f1, "):
        DataArguments(main_metric="auc")


@pytest.mark.parametrize(
    ("task_name", "given", "message"),
    [
        ("rte", ["data_dir", "label_column"], r"--label_column describe\(s\) a data set of your own, but "),
        ("sst2", ["dataset_name"], r"give your own data's task another name, e.g. --task_name my-sst2"),
        ("mine", ["data_dir"], r"--data_dir is GLUE's distribution layout, for the GLUE tasks"),
        (
            "mine",
            [],
            r"unknown GLUE task 'mine'; valid tasks are: cola, .*, wnli. For a data set of your own",
        ),
    ],
)
def test_the_task_and_its_data_arguments_must_fit(task_name, given, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_task_source(task_name, given)


def test_glue_tasks_and_your_own_data_load_through_one_call(tmp_path, glue_dir) -> None:
    task, data = load_task_and_datasets(DataArguments(task_name="rte", data_dir=str(glue_dir / "RTE")))
    assert task is GLUE_TASKS["rte"] and data["train"].num_rows == 2490
    task, data = load_task_and_datasets(
        DataArguments(
            train_file=str(SENTIMENT / "train.csv"),
            validation_file=str(SENTIMENT / "validation.csv"),
            main_metric="f1_macro",
            extra_metrics="matthews_correlation",
        ),
        cache_dir=str(tmp_path),
    )
    assert task.name == "sentiment" and task.main_metric == "f1_macro"
    assert task.metric_names == ("accuracy", "f1_macro", "matthews_correlation")
    with pytest.raises(ValueError, match=r"metric\(s\) \['f1'\] do not apply to task 'sentiment' \(3-class"):
        load_task_and_datasets(
            DataArguments(
                train_file=str(SENTIMENT / "train.csv"),
                validation_file=str(SENTIMENT / "validation.csv"),
                main_metric="f1",
            )
        )


def test_your_own_data_tokenises_like_a_glue_task(tmp_path, minilm_path) -> None:
    from transformers import AutoTokenizer

    train = write(tmp_path / "train.csv", "q,a,label\nwhy not,because,x\nhow come,so it is,y\n")
    task, data = load(tmp_path, train, train)
    tokenized = tokenize_dataset(data, AutoTokenizer.from_pretrained(minilm_path), task, max_seq_length=16)
    assert tokenized["train"].column_names == [
        "label",
        "idx",
        "input_ids",
        "token_type_ids",
        "attention_mask",
    ]
    assert tokenized["train"][0]["token_type_ids"].count(1) == 2  # "because" [SEP]: the pair's second text
