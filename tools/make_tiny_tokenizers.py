"""Regenerate the tiny offline tokenizers shipped in ``lavis_vislinginstruct/assets/tokenizers``.

The real models use bert-base-uncased (Q-Former), the Vicuna LLaMA sentencepiece model and the FlanT5
sentencepiece model; none can be downloaded here. The ``tiny`` model types use small stand-ins with the same
tokenizer classes and special-token ids (LLaMA: unk 0, bos 1, eos 2; T5: pad 0, eos 1, unk 2), trained in
about a second on ``corpus.txt`` (instruction templates, the demo world's words and common English).

Usage: ``python tools/make_tiny_tokenizers.py [EXTRA_CORPUS.txt ...]``
"""
import io
import os
import sys

import sentencepiece as spm
from tokenizers import BertWordPieceTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, os.pardir, "lavis_vislinginstruct", "assets", "tokenizers")


def read_corpus(paths):
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines.extend(line.strip() for line in f if line.strip())
    return lines


def train_spm(lines, prefix, vocab_size, ids, byte_fallback=True):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=byte_fallback,
        character_coverage=1.0,
        split_digits=True,
        add_dummy_prefix=True,
        **ids,
    )
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(prefix + ".model", "wb") as f:
        f.write(model.getvalue())


def main(argv):
    lines = read_corpus([os.path.join(HERE, "corpus.txt"), *argv])
    llama_dir = os.path.join(OUT, "tiny_llama")
    train_spm(lines, os.path.join(llama_dir, "tokenizer"), 1000,
              dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1))
    t5_dir = os.path.join(OUT, "tiny_t5")
    train_spm(lines, os.path.join(t5_dir, "spiece"), 1000,
              dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1), byte_fallback=False)  # as T5's own model
    bert = BertWordPieceTokenizer(lowercase=True)
    bert.train_from_iterator(lines, vocab_size=1000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    bert_dir = os.path.join(OUT, "tiny_bert")
    os.makedirs(bert_dir, exist_ok=True)
    bert.save_model(bert_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
