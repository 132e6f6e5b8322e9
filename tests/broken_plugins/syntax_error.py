def tuner_register_optimizers(register)
    pass
