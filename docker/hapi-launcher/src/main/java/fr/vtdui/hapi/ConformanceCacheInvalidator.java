package fr.vtdui.hapi;

import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import java.util.Set;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.springframework.transaction.support.TransactionSynchronization;
import org.springframework.transaction.support.TransactionSynchronizationManager;

/**
 * Empties the validation caches when a conformance resource is written.
 *
 * <p>HAPI's validation support chain caches lookups, including misses, for minutes. Without this, a
 * {@code $validate} run before a ValueSet or CodeSystem is uploaded keeps reporting it "not found" after the
 * upload (HAPI itself only invalidates on StructureDefinition writes).
 */
@Interceptor
public class ConformanceCacheInvalidator {

	private static final Set<String> CONFORMANCE_TYPES =
			Set.of("StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "SearchParameter");

	private final IValidationSupport validationSupport;

	public ConformanceCacheInvalidator(IValidationSupport validationSupport) {
		this.validationSupport = validationSupport;
	}

	@Hook(Pointcut.STORAGE_PRECOMMIT_RESOURCE_CREATED)
	public void created(IBaseResource resource) {
		changed(resource);
	}

	@Hook(Pointcut.STORAGE_PRECOMMIT_RESOURCE_UPDATED)
	public void updated(IBaseResource oldResource, IBaseResource newResource) {
		changed(newResource);
	}

	@Hook(Pointcut.STORAGE_PRECOMMIT_RESOURCE_DELETED)
	public void deleted(IBaseResource resource) {
		changed(resource);
	}

	private void changed(IBaseResource resource) {
		if (resource == null || !CONFORMANCE_TYPES.contains(resource.fhirType())) {
			return;
		}
		validationSupport.invalidateCaches();
		// Again once committed: a validation running meanwhile may have cached the old state.
		if (TransactionSynchronizationManager.isSynchronizationActive()) {
			TransactionSynchronizationManager.registerSynchronization(new TransactionSynchronization() {
				@Override
				public void afterCommit() {
					validationSupport.invalidateCaches();
				}
			});
		}
	}
}
