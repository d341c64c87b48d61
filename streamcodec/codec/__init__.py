"""The neural codec: transforms, entropy models, the coder, and the EVC model that joins them.

It knows tensors and bytes, nothing about files, time or asyncio.
"""
