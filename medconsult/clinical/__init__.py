"""Clinical knowledge the tools share: analyte codes and units, scores, marker interpretation."""
