"""mobileclip_c: MobileCLIP and MobileCLIP2 image-text models from Python,
over the mobileclip.c library (no PyTorch): NumPy in, float32 NumPy out, the
same numbers as the ``mobileclip`` command line.

Worked example (zero-shot classification and text-to-image search)::

    import mobileclip_c

    model = mobileclip_c.load("mobileclip_s0")        # or a checkpoint file / folder
    photos = ["cat.jpg", "dog.png", "beach.webp"]
    img = model.encode_image(photos)                  # float32 [3, 512], L2-normalised
    txt = model.encode_text(["a cat", "a dog"])       # float32 [2, 512]
    print(img @ txt.T)                                # cosine similarities

    probs = model.classify(photos, ["cat", "dog", "beach"],
                           templates=["a photo of a {}.", "a picture of a {}."])
    print(probs.argmax(axis=1))                       # [0, 1, 2]

    idx, scores = mobileclip_c.search(txt, img, k=2)  # best photos per text
    print([photos[i] for i in idx[0]])

Images may be paths, bytes of JPEG/PNG/WebP files, uint8 ``[H, W, 3]`` RGB
arrays, PIL images, or float32 ``[3, S, S]`` pixels from ``model.preprocess``.

Contents
    load(model, weights=...)  -> Model (official name, file or folder)
    Model.encode_image, encode_text, tokenize, preprocess, classify,
        text_classifier, info, close
    tokenize(texts)           token ids without a model
    Tokenizer                 the tokenizer as an object
    search(queries, matrix, k)  exact top-k by inner product (NumPy)
    Index(db_path)            a photo index (SQLite): .search(text | image |
                              vector, k), .info, .update(folders), .image(id)
    list_models()             official model names
    Error, Status             library errors: status and the library's message
    library_path(), library_version()

Errors: the library's failures raise :class:`Error` with ``.status`` (a
:class:`Status`) and ``.message`` (naming the file, tensor or option at
fault); bad Python arguments raise TypeError or ValueError.

Threads: a :class:`Model` may be shared by threads.  Each thread gets its own
C context on first use (as the C API wants: one mc_model, one mc_context per
thread), and every library call runs with the GIL released (the library is a
ctypes.CDLL), so threads encode in parallel; give ``load(..., threads=N)``
about cores / number of threads.  Results do not depend on the thread count;
with the default batch sizes they are bit for bit the CLI's.

The library: ``$MOBILECLIP_LIB`` (the .so file, or its folder), else the
installed one (pkg-config's mobileclip libdir, else /usr/local/lib), else the
copy shipped inside this package, else the dynamic linker's search path;
``library_path()`` says which was loaded.  The tokenizer vocabulary
(bpe_simple_vocab_16e6.txt.gz) comes from ``$MOBILECLIP_VOCAB``, beside the
model, or the install's share folder; official models bring their own.
"""
from ._capi import Error, Status
from ._core import (Hit, Index, IndexInfo, Model, ModelInfo, PreprocessParams, Tokenizer, library_path,
                    library_version, list_models, load, search, tokenize)

__version__ = "0.1.0"

for _obj in (Error, Status, Model, ModelInfo, PreprocessParams, Tokenizer, Index, IndexInfo, Hit, library_path,
             library_version, list_models, load, search, tokenize):
    _obj.__module__ = __name__   # help() and tracebacks name them as users import them
del _obj

__all__ = ["load", "Model", "ModelInfo", "PreprocessParams", "tokenize", "Tokenizer", "search", "Index",
           "IndexInfo", "Hit", "list_models", "Error", "Status", "library_path", "library_version"]
