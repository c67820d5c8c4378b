"""Seeded byte mutations shared by the fuzz tests (decoder and .pth reader)."""


def mutations(data, rng, count):
  """`count` seeded mutations of `data`: changed bytes, cuts, splices."""
  for _ in range(count):
    mutated = bytearray(data)
    kind = rng.integers(3)
    if kind == 0:
      for at in rng.integers(0, len(mutated), rng.integers(1, 8)):
        mutated[at] = int(rng.integers(256))
    elif kind == 1:
      mutated = mutated[:rng.integers(1, len(mutated))]
    else:
      at = int(rng.integers(len(mutated)))
      mutated[at:at] = mutated[rng.integers(len(mutated)):][:64]
    yield bytes(mutated)
