"""Encoder/decoder, discriminator and the tokenizer builders."""
