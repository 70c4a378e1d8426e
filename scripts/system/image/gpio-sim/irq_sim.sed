# irq_to_desc() is not exported to modules (kernel/irq/irqdesc.c): dispatch the simulated
# interrupt through generic_handle_irq(), which is, and does the same lookup + handle_simple_irq.
s/handle_simple_irq(irq_to_desc(\([A-Za-z_][A-Za-z0-9_]*\)))/generic_handle_irq(\1)/
