"""The embedded demo: a tiny synthetic "customer assistant" world and two
checkpoints trained on it locally (a base that apologises and gets finance
answers wrong, and a candidate fine-tuned to answer confidently), so the whole
tool runs with no GPU, model hub or API key.
"""
